//! The network: an embedding of the events, two LSTM layers and a linear layer scoring every
//! possible next event — built, trained and run with candle on the CPU. Its weights travel
//! as plain named arrays, so a model is saved like every other detector's.

use std::collections::BTreeMap;

use candle_core::{D, DType, Device, IndexOp, Tensor, Var};
use candle_nn::{
    AdamW, Embedding, LSTM, LSTMConfig, Linear, Module, Optimizer, ParamsAdamW, RNN, VarBuilder,
    VarMap,
};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};

/// A weight array: its shape and its values, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// The sizes that fix the network's shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Input events: the vocabulary, then UNKNOWN and PAD.
    pub inputs: usize,
    /// Next events: the vocabulary, then END.
    pub outputs: usize,
    pub embedding: usize,
    pub hidden: usize,
}

pub struct Network {
    embed: Embedding,
    first: LSTM,
    second: LSTM,
    out: Linear,
}

impl Network {
    fn build(vb: VarBuilder, s: Shape) -> candle_core::Result<Self> {
        Ok(Self {
            embed: candle_nn::embedding(s.inputs, s.embedding, vb.pp("embed"))?,
            first: candle_nn::lstm(s.embedding, s.hidden, LSTMConfig::default(), vb.pp("first"))?,
            second: candle_nn::lstm(s.hidden, s.hidden, LSTMConfig::default(), vb.pp("second"))?,
            out: candle_nn::linear(s.hidden, s.outputs, vb.pp("out"))?,
        })
    }

    /// The network with saved weights.
    pub fn load(weights: &BTreeMap<String, Weights>, s: Shape) -> candle_core::Result<Self> {
        Self::build(loaded(weights)?, s)
    }

    /// Scores of every next event (rows) after each history (`batch` × `window` input ids).
    pub fn forward(&self, histories: &[u32], window: usize) -> candle_core::Result<Tensor> {
        let batch = histories.len() / window;
        let x = Tensor::from_slice(histories, (batch, window), &Device::Cpu)?;
        let x = self.embed.forward(&x)?;
        let (mut a, mut b) = (
            self.first.zero_state(batch)?,
            self.second.zero_state(batch)?,
        );
        for t in 0..window {
            let step = x.i((.., t, ..))?.contiguous()?;
            a = self.first.step(&step, &a)?;
            b = self.second.step(a.h(), &b)?;
        }
        self.out.forward(b.h())
    }
}

/// Optimiser steps training makes at least, however few the pairs.
const MIN_STEPS: usize = 300;

/// What training was given and what it took.
pub struct Samples<'a> {
    /// `window` input ids per sample, one after another.
    pub histories: &'a [u32],
    pub next: &'a [u32],
    pub counts: &'a [f32],
}

/// Train a network of shape `s` on `samples` (each pair's loss weighted by its count):
/// its weights and the last epoch's mean loss.
pub fn train(
    samples: &Samples<'_>,
    s: Shape,
    p: &super::LstmValidParams,
) -> candle_core::Result<(BTreeMap<String, Weights>, f64)> {
    let varmap = VarMap::new();
    let mut rng = Xoshiro256Plus::seed_from_u64(p.seed);
    seeded_weights(&varmap, s, &mut rng)?;
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
    let n = samples.next.len();
    let mut order: Vec<usize> = (0..n).collect();
    let mut last_loss = 0.0;
    // A system with few distinct (history, event) pairs fills one batch: `epochs` passes
    // would then be as many optimiser steps, too few to learn anything (the generator's 77
    // pairs were ranked as if at random). Passes go on until MIN_STEPS steps are made.
    let batches = n.div_ceil(p.batch_size).max(1);
    let passes = p.epochs.max(MIN_STEPS.div_ceil(batches));
    for _ in 0..passes {
        // Fisher–Yates with the seeded generator: the same order for the same seed.
        for i in (1..n).rev() {
            order.swap(i, rng.gen_range(0..=i));
        }
        let (mut total, mut weight) = (0.0, 0.0);
        for batch in order.chunks(p.batch_size) {
            let histories: Vec<u32> = batch
                .iter()
                .flat_map(|&i| &samples.histories[i * p.window..(i + 1) * p.window])
                .copied()
                .collect();
            let next: Vec<u32> = batch.iter().map(|&i| samples.next[i]).collect();
            let counts: Vec<f32> = batch.iter().map(|&i| samples.counts[i]).collect();
            let sum: f32 = counts.iter().sum();
            let logits = net.forward(&histories, p.window)?;
            let log_p = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
            let target = Tensor::from_slice(&next, (next.len(), 1), &Device::Cpu)?;
            let picked = log_p.gather(&target, 1)?.squeeze(1)?;
            let counts = Tensor::from_slice(&counts, counts.len(), &Device::Cpu)?;
            let loss = ((picked * counts)?.sum_all()?.neg()? / f64::from(sum))?;
            opt.backward_step(&loss)?;
            total += f64::from(loss.to_scalar::<f32>()?) * f64::from(sum);
            weight += f64::from(sum);
        }
        last_loss = total / weight.max(1.0);
    }
    Ok((saved(&varmap)?, last_loss))
}

/// The trained weights of `varmap`, as they are saved.
pub(crate) fn saved(varmap: &VarMap) -> candle_core::Result<BTreeMap<String, Weights>> {
    varmap
        .data()
        .lock()
        .expect("the weights' lock")
        .iter()
        .map(|(name, var)| {
            let t = var.as_tensor();
            Ok((
                name.clone(),
                Weights {
                    shape: t.dims().to_vec(),
                    values: t.flatten_all()?.to_vec1::<f32>()?,
                },
            ))
        })
        .collect()
}

/// Saved weights as a variable builder that layers read them from.
pub(crate) fn loaded(
    weights: &BTreeMap<String, Weights>,
) -> candle_core::Result<VarBuilder<'static>> {
    let tensors = weights
        .iter()
        .map(|(name, w)| {
            Ok((
                name.clone(),
                Tensor::from_slice(&w.values, w.shape.as_slice(), &Device::Cpu)?,
            ))
        })
        .collect::<candle_core::Result<std::collections::HashMap<_, _>>>()?;
    Ok(VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu))
}

/// Every weight drawn from `rng` before the layers are built (which then find them in the
/// map rather than drawing their own from candle's unseeded generator): uniform in ±1/√fan,
/// PyTorch's scheme for LSTM and linear layers; embeddings standard normal-ish (uniform ±√3).
fn seeded_weights(varmap: &VarMap, s: Shape, rng: &mut Xoshiro256Plus) -> candle_core::Result<()> {
    let mut all = vec![embedding_weights("embed", s.inputs, s.embedding)];
    all.extend(lstm_weights("first", s.embedding, s.hidden));
    all.extend(lstm_weights("second", s.hidden, s.hidden));
    all.extend(linear_weights("out", s.hidden, s.outputs));
    insert_seeded(varmap, all, rng)
}

/// A weight to draw: its name, shape and the bound of its uniform draw.
pub(crate) type Draw = (String, Vec<usize>, f32);

fn fan_bound(fan: usize) -> f32 {
    1.0 / (fan as f32).sqrt()
}

/// An LSTM layer's weights as candle names them, each uniform in ±1/√hidden.
pub(crate) fn lstm_weights(name: &str, input: usize, hidden: usize) -> Vec<Draw> {
    let k = fan_bound(hidden);
    vec![
        (format!("{name}.weight_ih_l0"), vec![4 * hidden, input], k),
        (format!("{name}.weight_hh_l0"), vec![4 * hidden, hidden], k),
        (format!("{name}.bias_ih_l0"), vec![4 * hidden], k),
        (format!("{name}.bias_hh_l0"), vec![4 * hidden], k),
    ]
}

/// An embedding's weights, uniform in ±√3 (unit variance).
pub(crate) fn embedding_weights(name: &str, inputs: usize, size: usize) -> Draw {
    (format!("{name}.weight"), vec![inputs, size], 3f32.sqrt())
}

/// A linear layer's weights and bias, uniform in ±1/√input.
pub(crate) fn linear_weights(name: &str, input: usize, output: usize) -> Vec<Draw> {
    let k = fan_bound(input);
    vec![
        (format!("{name}.weight"), vec![output, input], k),
        (format!("{name}.bias"), vec![output], k),
    ]
}

/// Every weight of `all` drawn from `rng`, in order, into `varmap`.
pub(crate) fn insert_seeded(
    varmap: &VarMap,
    all: Vec<Draw>,
    rng: &mut Xoshiro256Plus,
) -> candle_core::Result<()> {
    let mut data = varmap.data().lock().expect("the weights' lock");
    for (name, shape, bound) in all {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| rng.gen_range(-bound..bound)).collect();
        let t = Tensor::from_vec(values, shape.as_slice(), &Device::Cpu)?;
        data.insert(name, Var::from_tensor(&t)?);
    }
    Ok(())
}
