//! The network: an embedding, an encoder LSTM whose last state stands for the chunk, a
//! decoder LSTM fed that state at every step, and a linear layer scoring every symbol at each
//! position — built, trained and run with candle on the CPU, its weights saved as plain named
//! arrays (the next-event LSTM's helpers).

use std::collections::BTreeMap;

use candle_core::{D, DType, Device, IndexOp, Tensor};
use candle_nn::{
    AdamW, Embedding, LSTM, LSTMConfig, Linear, Module, Optimizer, ParamsAdamW, RNN, VarBuilder,
    VarMap,
};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;

use super::LstmAutoencoderValidParams;
use crate::detectors::lstm::network::{
    Weights, embedding_weights, insert_seeded, linear_weights, loaded, lstm_weights, saved,
};

/// The sizes that fix the network's shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Symbols in and out: the vocabulary, then UNKNOWN and PAD.
    pub symbols: usize,
    pub embedding: usize,
    pub hidden: usize,
}

pub struct Network {
    embed: Embedding,
    encoder: LSTM,
    decoder: LSTM,
    out: Linear,
}

impl Network {
    fn build(vb: VarBuilder, s: Shape) -> candle_core::Result<Self> {
        let config = LSTMConfig::default;
        Ok(Self {
            embed: candle_nn::embedding(s.symbols, s.embedding, vb.pp("embed"))?,
            encoder: candle_nn::lstm(s.embedding, s.hidden, config(), vb.pp("encoder"))?,
            decoder: candle_nn::lstm(s.hidden, s.hidden, config(), vb.pp("decoder"))?,
            out: candle_nn::linear(s.hidden, s.symbols, vb.pp("out"))?,
        })
    }

    pub fn load(weights: &BTreeMap<String, Weights>, s: Shape) -> candle_core::Result<Self> {
        Self::build(loaded(weights)?, s)
    }

    /// Log-probabilities of every symbol at every position of each chunk rebuilt
    /// (`batch` × `len` ids in, `batch` × `len` × symbols out).
    pub fn rebuild(&self, chunks: &[u32], len: usize) -> candle_core::Result<Tensor> {
        let batch = chunks.len() / len;
        let x = Tensor::from_slice(chunks, (batch, len), &Device::Cpu)?;
        let x = self.embed.forward(&x)?;
        let mut state = self.encoder.zero_state(batch)?;
        for t in 0..len {
            state = self
                .encoder
                .step(&x.i((.., t, ..))?.contiguous()?, &state)?;
        }
        let code = state.h().clone();
        let mut state = self.decoder.zero_state(batch)?;
        let mut steps = Vec::with_capacity(len);
        for _ in 0..len {
            state = self.decoder.step(&code, &state)?;
            steps.push(state.h().clone());
        }
        let h = Tensor::stack(&steps, 1)?;
        candle_nn::ops::log_softmax(&self.out.forward(&h)?, D::Minus1)
    }

    /// Each chunk's mean negative log-likelihood over its real (not PAD) positions.
    pub fn errors(&self, chunks: &[u32], len: usize, pad: u32) -> candle_core::Result<Tensor> {
        let log_p = self.rebuild(chunks, len)?;
        let batch = chunks.len() / len;
        let target = Tensor::from_slice(chunks, (batch, len, 1), &Device::Cpu)?;
        let picked = log_p.gather(&target, 2)?.squeeze(2)?;
        let mask: Vec<f32> = chunks.iter().map(|&c| f32::from(c != pad)).collect();
        let mask = Tensor::from_vec(mask, (batch, len), &Device::Cpu)?;
        let real = mask.sum(1)?.clamp(1f32, f32::MAX)?;
        (picked * &mask)?.sum(1)?.neg()? / real
    }
}

/// Optimiser steps training makes at least, however few the chunks.
const MIN_STEPS: usize = 300;

/// Train a network of shape `s` on distinct `chunks` (`len` ids each) weighted by `counts`:
/// its weights and the last pass's mean error.
pub fn train(
    (chunks, counts): (&[u32], &[f32]),
    len: usize,
    pad: u32,
    s: Shape,
    p: &LstmAutoencoderValidParams,
) -> candle_core::Result<(BTreeMap<String, Weights>, f64)> {
    let varmap = VarMap::new();
    let mut rng = Xoshiro256Plus::seed_from_u64(p.seed);
    let mut all = vec![embedding_weights("embed", s.symbols, s.embedding)];
    all.extend(lstm_weights("encoder", s.embedding, s.hidden));
    all.extend(lstm_weights("decoder", s.hidden, s.hidden));
    all.extend(linear_weights("out", s.hidden, s.symbols));
    insert_seeded(&varmap, all, &mut rng)?;
    let net = Network::build(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        s,
    )?;
    let mut opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: p.learning_rate,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let n = counts.len();
    let mut order: Vec<usize> = (0..n).collect();
    let batches = n.div_ceil(p.batch_size).max(1);
    let passes = p.epochs.max(MIN_STEPS.div_ceil(batches));
    let mut last = 0.0;
    for _ in 0..passes {
        for i in (1..n).rev() {
            order.swap(i, rng.gen_range(0..=i));
        }
        let (mut total, mut weight) = (0.0, 0.0);
        for batch in order.chunks(p.batch_size) {
            let ids: Vec<u32> = batch
                .iter()
                .flat_map(|&i| &chunks[i * len..(i + 1) * len])
                .copied()
                .collect();
            let w: Vec<f32> = batch.iter().map(|&i| counts[i]).collect();
            let sum: f32 = w.iter().sum();
            let w = Tensor::from_slice(&w, w.len(), &Device::Cpu)?;
            let loss = ((net.errors(&ids, len, pad)? * w)?.sum_all()? / f64::from(sum))?;
            opt.backward_step(&loss)?;
            total += f64::from(loss.to_scalar::<f32>()?) * f64::from(sum);
            weight += f64::from(sum);
        }
        last = total / weight.max(1.0);
    }
    Ok((saved(&varmap)?, last))
}
