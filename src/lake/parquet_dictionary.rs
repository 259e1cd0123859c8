//! String columns dictionary-encoded before Polars' Parquet encoder sees them.
//!
//! Given a string column and dictionary encoding, Polars first estimates the column's
//! cardinality by hashing every value, then, when a dictionary pays, groups the values by
//! hashing each again. For the lake's short, repetitive columns (`service`, `template_id`,
//! `session_key`) that is two full hashes of a value that is, more often than not, the one in
//! the row before. Polars' dictionary path was about 5 % of `loglake run`'s CPU on a million
//! HDFS lines.
//!
//! Here one pass does both. A value equal to the previous row's (the same 16-byte view, so no
//! hashing) takes its key; so does one whose view was seen before (one 16-byte hash); any
//! other is looked up in a hash map. The dictionary holds values
//! in order of first appearance, as Polars' own grouping does, so the pages Polars writes from
//! it are the pages it would have written. The choice between a dictionary and plain values
//! follows Polars' rule — plain once distinct values exceed three quarters of the rows — with
//! the exact count instead of an estimate. A column whose first rows are already mostly
//! distinct (silver's `message` and `params`, an event's `entity_key`) goes back to Polars'
//! estimate, which hashes it once without building a map: its repeats, if any, may come later
//! (a score table holds each session once per detector, the detectors one after another), so
//! the first rows alone must not decide.

use polars_arrow::array::{Array, DictionaryArray, MutableBinaryViewArray, PrimitiveArray};
use polars_arrow::array::{Utf8ViewArray, View};
use polars_arrow::datatypes::{ArrowDataType, IntegerType};
use rustc_hash::FxHashMap;

/// Columns up to this many rows always get a dictionary (Polars' threshold).
const SMALL: usize = 128;

/// Rows read before handing a mostly distinct column to Polars' estimate.
const PREFIX: usize = 4096;

/// A column's values may be at most this share distinct for a dictionary to pay (Polars'
/// threshold).
const MAX_DISTINCT_SHARE: f64 = 0.75;

/// How a string column goes to Parquet.
pub(super) enum StringPages {
    /// As this dictionary array: the same strings, each row a key into its distinct values.
    Dictionary(DictionaryArray<u32>),
    /// As plain values: too many of them are distinct for a dictionary to pay.
    Plain,
}

/// How `array` should be written when it is a string column; `None` for any other column.
pub(super) fn string_pages(array: &dyn Array) -> Option<StringPages> {
    let strings = array.as_any().downcast_ref::<Utf8ViewArray>()?;
    let rows = strings.len();
    Some(match pages_of(strings, true) {
        Some(pages) => pages,
        // Mostly distinct at first: Polars' estimate decides whether grouping it all pays.
        None => {
            let estimate = polars::polars_compute::cardinality::estimate_cardinality(strings);
            if too_many(rows, estimate, rows) {
                StringPages::Plain
            } else {
                pages_of(strings, false).expect("only an early stop gives up")
            }
        }
    })
}

/// Whether `distinct` values among `seen` of a column of `rows` rows are too many for a
/// dictionary.
fn too_many(rows: usize, distinct: usize, seen: usize) -> bool {
    rows > SMALL && distinct as f64 > MAX_DISTINCT_SHARE * seen as f64
}

/// How `strings` goes to Parquet, by grouping it all; with `stop_early`, `None` once the
/// first [`PREFIX`] rows turn out mostly distinct.
fn pages_of(strings: &Utf8ViewArray, stop_early: bool) -> Option<StringPages> {
    let rows = strings.len();
    let views: &[View] = strings.views();
    let mut keys: Vec<u32> = Vec::with_capacity(rows);
    let mut index: FxHashMap<&str, u32> = FxHashMap::default();
    let mut values = MutableBinaryViewArray::<str>::new();
    let mut previous: Option<(View, u32)> = None;
    // Keys by view: rows that share a view share a value (a column gathered from its distinct
    // values, or read from a dictionary page, repeats one view per value), and a view hashes
    // faster than the text it stands for.
    let mut by_view: Option<FxHashMap<u128, u32>> = Some(FxHashMap::default());
    let mut by_view_hits = 0usize;
    for (row, view) in views.iter().enumerate() {
        if stop_early && row == PREFIX && too_many(rows, index.len(), row) {
            return None;
        }
        if strings.is_null(row) {
            keys.push(0);
            continue;
        }
        if let Some((v, key)) = previous
            && v == *view
        {
            keys.push(key);
            continue;
        }
        if let Some(seen) = &mut by_view {
            if let Some(&key) = seen.get(&view.as_u128()) {
                by_view_hits += 1;
                keys.push(key);
                previous = Some((*view, key));
                continue;
            }
            // Rows rarely share views here: the map would only cost.
            if row >= PREFIX && by_view_hits * 4 < row {
                by_view = None;
            }
        }
        // SAFETY: `row` is below the array's length.
        let value = unsafe { strings.value_unchecked(row) };
        let next = index.len() as u32;
        let key = *index.entry(value).or_insert_with(|| {
            values.push_value(value);
            next
        });
        if let Some(seen) = &mut by_view {
            seen.insert(view.as_u128(), key);
        }
        keys.push(key);
        previous = Some((*view, key));
    }
    if too_many(rows, index.len(), rows) {
        return Some(StringPages::Plain);
    }
    let keys = PrimitiveArray::new(
        ArrowDataType::UInt32,
        keys.into(),
        strings.validity().cloned(),
    );
    let values: Utf8ViewArray = values.into();
    let dtype = ArrowDataType::Dictionary(
        IntegerType::UInt32,
        Box::new(ArrowDataType::Utf8View),
        false,
    );
    Some(StringPages::Dictionary(
        DictionaryArray::try_new(dtype, keys, values.boxed())
            .expect("every key indexes a value pushed above"),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::parquet_write::{encode_column, write_options, write_row_group};
    use super::*;
    use polars::prelude::ArrayRef;
    use polars_parquet::write::{Encoding, FileWriter, array_to_columns, compress};

    fn strings(values: &[Option<&str>]) -> Utf8ViewArray {
        let mut array = MutableBinaryViewArray::<str>::new();
        for v in values {
            array.push(*v);
        }
        array.into()
    }

    fn decoded(d: &DictionaryArray<u32>) -> Vec<Option<String>> {
        let values = d.values().as_any().downcast_ref::<Utf8ViewArray>().unwrap();
        (0..d.len())
            .map(|i| {
                d.keys()
                    .is_valid(i)
                    .then(|| values.value(d.keys().value(i) as usize).to_string())
            })
            .collect()
    }

    #[test]
    fn repeated_strings_become_keys_into_values_in_order_of_first_appearance() {
        let long = "a value longer than twelve bytes, kept out of line";
        let rows = [
            Some("b"),
            Some("b"),
            None,
            Some(long),
            Some("a"),
            Some(long),
            Some("b"),
            None,
        ];
        let Some(StringPages::Dictionary(d)) = string_pages(&strings(&rows)) else {
            panic!("a short column always gets a dictionary");
        };
        let values = d.values().as_any().downcast_ref::<Utf8ViewArray>().unwrap();
        let distinct: Vec<&str> = values.values_iter().collect();
        assert_eq!(distinct, ["b", long, "a"]);
        let expected: Vec<Option<String>> = rows.iter().map(|r| r.map(String::from)).collect();
        assert_eq!(decoded(&d), expected);
        assert_eq!(d.keys().null_count(), 2);
    }

    #[test]
    fn mostly_distinct_columns_are_plain_and_others_are_not() {
        let distinct: Vec<String> = (0..10_000).map(|i| format!("line {i}")).collect();
        let rows: Vec<Option<&str>> = distinct.iter().map(|s| Some(s.as_str())).collect();
        assert!(matches!(
            string_pages(&strings(&rows)),
            Some(StringPages::Plain)
        ));
        // Each value twice in a row: half distinct, a dictionary.
        let half: Vec<Option<&str>> = (0..10_000).map(|i| rows[i / 2]).collect();
        assert!(matches!(
            string_pages(&strings(&half)),
            Some(StringPages::Dictionary(_))
        ));
        // Distinct at first, repeats later (each value once per detector, the detectors one
        // after another): still a dictionary.
        let blocks: Vec<Option<&str>> = (0..4).flat_map(|_| rows.iter().copied()).collect();
        let Some(StringPages::Dictionary(d)) = string_pages(&strings(&blocks)) else {
            panic!("a column of repeats after distinct first rows gets a dictionary");
        };
        let expected: Vec<Option<String>> = blocks.iter().map(|r| r.map(String::from)).collect();
        assert_eq!(decoded(&d), expected);
    }

    /// A one-column Parquet file of `array`, its pages made by `pages`.
    fn file_of(
        array: &Utf8ViewArray,
        pages: impl Fn(
            &ArrayRef,
            &polars_parquet::write::ParquetType,
            polars_parquet::write::WriteOptions,
        ) -> Vec<Vec<polars_parquet::write::CompressedPage>>,
    ) -> Vec<u8> {
        use polars_arrow::datatypes::{ArrowSchema, Field};
        let options = write_options().unwrap();
        let schema: ArrowSchema = [Field::new("s".into(), ArrowDataType::Utf8View, true)]
            .into_iter()
            .map(|f| (f.name.clone(), f))
            .collect();
        let mut out = Vec::new();
        let mut writer = FileWriter::try_new(&mut out, schema, options).unwrap();
        let field = writer.parquet_schema().fields()[0].clone();
        let columns = pages(&array.clone().boxed(), &field, options);
        write_row_group(&mut writer, array.len() as u64, &columns).unwrap();
        writer.end(None).unwrap();
        out
    }

    /// The file our encoder writes of `array` with a dictionary is the one Polars writes.
    fn assert_same_file_as_polars(array: &Utf8ViewArray) {
        let dictionary = [Encoding::RleDictionary];
        let ours = file_of(array, |a, f, o| {
            encode_column(a, f, &dictionary, o).unwrap()
        });
        let polars = file_of(array, |a, f, o| {
            array_to_columns(a, f.clone(), o, &dictionary)
                .unwrap()
                .into_iter()
                .map(|pages| {
                    pages
                        .map(|p| compress(p.unwrap(), Vec::new(), o.compression).unwrap())
                        .collect()
                })
                .collect()
        });
        assert_eq!(ours, polars);
    }

    #[test]
    fn the_file_is_the_one_polars_writes_from_the_strings() {
        let rows: Vec<Option<String>> = (0..20_000)
            .map(|i: u64| {
                (!i.is_multiple_of(97)).then(|| {
                    format!(
                        "value {} of a column of mostly repeated strings",
                        (i * 7919) % 300
                    )
                })
            })
            .collect();
        let rows: Vec<Option<&str>> = rows.iter().map(|r| r.as_deref()).collect();
        let array = strings(&rows);
        assert!(matches!(
            string_pages(&array),
            Some(StringPages::Dictionary(_))
        ));
        assert_same_file_as_polars(&array);
    }

    /// `rows` as one array whose rows share the view of their value (as a column gathered
    /// from its distinct values does), nulls as `None`.
    fn shared_views(rows: &[Option<usize>], distinct: &[&str]) -> Utf8ViewArray {
        let values = strings(&distinct.iter().map(|v| Some(*v)).collect::<Vec<_>>());
        let views: Vec<View> = rows
            .iter()
            .map(|r| values.views()[r.unwrap_or(0)])
            .collect();
        let validity: polars_arrow::bitmap::Bitmap = rows.iter().map(Option::is_some).collect();
        Utf8ViewArray::try_new(
            ArrowDataType::Utf8View,
            views.into(),
            values.data_buffers().clone(),
            Some(validity),
        )
        .unwrap()
    }

    #[test]
    fn rows_sharing_views_get_their_values_keys() {
        let distinct = [
            "a template id of sixteen",
            "x",
            "another value longer than twelve bytes",
        ];
        // Interleaved, with nulls: most rows are found by their view.
        let rows: Vec<Option<usize>> = (0..10_000)
            .map(|i| (i % 13 != 5).then_some((i * 7) % 3))
            .collect();
        let array = shared_views(&rows, &distinct);
        let Some(StringPages::Dictionary(d)) = string_pages(&array) else {
            panic!("three values in 10,000 rows get a dictionary");
        };
        let expected: Vec<Option<String>> = rows
            .iter()
            .map(|r| r.map(|i| distinct[i].to_string()))
            .collect();
        assert_eq!(decoded(&d), expected);
        // And the file is the one Polars writes from the same rows.
        assert_same_file_as_polars(&array);
    }

    #[test]
    fn equal_values_under_different_views_share_a_key_after_views_stop_paying() {
        // Every row its own copy (no view repeats), values repeating every 50 rows: the view
        // map is given up after the first rows and the values still group.
        let rows: Vec<Option<String>> = (0..20_000)
            .map(|i| Some(format!("a long enough value number {}", i % 50)))
            .collect();
        let rows: Vec<Option<&str>> = rows.iter().map(|r| r.as_deref()).collect();
        let Some(StringPages::Dictionary(d)) = string_pages(&strings(&rows)) else {
            panic!("50 values in 20,000 rows get a dictionary");
        };
        assert_eq!(d.values().len(), 50);
        let expected: Vec<Option<String>> = rows.iter().map(|r| r.map(String::from)).collect();
        assert_eq!(decoded(&d), expected);
    }

    #[test]
    fn other_columns_are_left_alone() {
        let numbers = PrimitiveArray::<i64>::from_vec(vec![1, 2, 3]);
        assert!(string_pages(&numbers).is_none());
    }
}
