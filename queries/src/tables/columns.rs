//! Typed columns out of record batches, by name, for the row structs' decoders: a column is
//! cast to the Rust type the row field has, and a null where the field is not an `Option` is
//! an error naming the column (never a NaN or an empty string standing in for it).

use arrow::array::{ArrowPrimitiveType, AsArray, RecordBatch};
use arrow::datatypes::DataType;

use crate::{Error, Result};

fn named<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a arrow::array::ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| Error::Column {
        column: name.to_owned(),
        why: format!(
            "not in the result (columns: {})",
            batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// Values of a numeric column, nulls as `None`, cast to `T`.
pub fn optional<T: ArrowPrimitiveType>(
    batches: &[RecordBatch],
    name: &str,
) -> Result<Vec<Option<T::Native>>> {
    let mut out = Vec::new();
    for b in batches {
        let col = arrow::compute::cast(named(b, name)?, &T::DATA_TYPE)?;
        out.extend(col.as_primitive::<T>().iter());
    }
    Ok(out)
}

/// Values of a numeric column that may not hold nulls, cast to `T`.
pub fn required<T: ArrowPrimitiveType>(
    batches: &[RecordBatch],
    name: &str,
) -> Result<Vec<T::Native>> {
    optional::<T>(batches, name)?
        .into_iter()
        .map(|v| v.ok_or_else(|| null_in(name)))
        .collect()
}

/// Values of a text column, nulls as `None`.
pub fn optional_text(batches: &[RecordBatch], name: &str) -> Result<Vec<Option<String>>> {
    let mut out = Vec::new();
    for b in batches {
        let col = arrow::compute::cast(named(b, name)?, &DataType::Utf8)?;
        out.extend(col.as_string::<i32>().iter().map(|v| v.map(str::to_owned)));
    }
    Ok(out)
}

/// Values of a text column that may not hold nulls.
pub fn text(batches: &[RecordBatch], name: &str) -> Result<Vec<String>> {
    optional_text(batches, name)?
        .into_iter()
        .map(|v| v.ok_or_else(|| null_in(name)))
        .collect()
}

fn null_in(name: &str) -> Error {
    Error::Column {
        column: name.to_owned(),
        why: "null where a value is required".into(),
    }
}

/// A Rust type a column can be read as (by name, cast, nulls only where it is an `Option`).
pub trait Column: Sized {
    fn read(batches: &[RecordBatch], name: &str) -> Result<Vec<Self>>;
}

macro_rules! numeric_column {
    ($($rust:ty => $arrow:ty),* $(,)?) => {$(
        impl Column for $rust {
            fn read(batches: &[RecordBatch], name: &str) -> Result<Vec<Self>> {
                required::<$arrow>(batches, name)
            }
        }
        impl Column for Option<$rust> {
            fn read(batches: &[RecordBatch], name: &str) -> Result<Vec<Self>> {
                optional::<$arrow>(batches, name)
            }
        }
    )*};
}

numeric_column!(
    u16 => arrow::datatypes::UInt16Type,
    u32 => arrow::datatypes::UInt32Type,
    u64 => arrow::datatypes::UInt64Type,
    i64 => arrow::datatypes::Int64Type,
    f32 => arrow::datatypes::Float32Type,
    f64 => arrow::datatypes::Float64Type,
);

impl Column for String {
    fn read(batches: &[RecordBatch], name: &str) -> Result<Vec<Self>> {
        text(batches, name)
    }
}

impl Column for Option<String> {
    fn read(batches: &[RecordBatch], name: &str) -> Result<Vec<Self>> {
        optional_text(batches, name)
    }
}

/// Rows of a query result (or a table read back), one struct field per column of that name.
pub trait FromBatches: Sized {
    fn from_batches(batches: &[RecordBatch]) -> Result<Vec<Self>>;
}

/// Declares a row struct whose fields are read from the columns of the same names:
/// `query_row! { /// doc \n pub struct LossRow { pub model: String, pub val_loss: Option<f64> } }`.
#[macro_export]
macro_rules! query_row {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name { $($(#[$fmeta])* pub $field: $ty),* }

        impl $crate::tables::columns::FromBatches for $name {
            fn from_batches(
                batches: &[arrow::array::RecordBatch],
            ) -> $crate::Result<Vec<Self>> {
                let n: usize = batches.iter().map(|b| b.num_rows()).sum();
                $(
                    let mut $field = <$ty as $crate::tables::columns::Column>::read(
                        batches,
                        stringify!($field),
                    )?
                    .into_iter();
                )*
                Ok((0..n)
                    .map(|_| Self {
                        $($field: $field.next().expect("one value per row"),)*
                    })
                    .collect())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray, UInt16Array};
    use arrow::datatypes::{Float32Type, UInt32Type};

    use super::*;

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "layer",
                Arc::new(UInt16Array::from(vec![Some(1), None])) as _,
            ),
            ("x", Arc::new(Float64Array::from(vec![0.5, 2.0])) as _),
            ("s", Arc::new(StringArray::from(vec![Some("a"), None])) as _),
        ])
        .unwrap()
    }

    #[test]
    fn columns_cast_by_name_and_keep_nulls_apart() {
        let b = [batch(), batch()];
        assert_eq!(
            optional::<UInt32Type>(&b, "layer").unwrap(),
            vec![Some(1), None, Some(1), None]
        );
        assert_eq!(
            required::<Float32Type>(&b, "x").unwrap(),
            vec![0.5, 2.0, 0.5, 2.0]
        );
        assert_eq!(
            optional_text(&b[..1], "s").unwrap(),
            vec![Some("a".into()), None]
        );
        let err = required::<UInt32Type>(&b, "layer").unwrap_err().to_string();
        assert!(err.contains("`layer`") && err.contains("null"), "{err}");
        let err = text(&b, "nope").unwrap_err().to_string();
        assert!(
            err.contains("`nope`") && err.contains("layer, x, s"),
            "{err}"
        );
    }

    crate::query_row! {
        /// A row read by field name, whatever the column order.
        pub struct Row {
            pub s: Option<String>,
            pub x: f64,
            pub layer: Option<u16>,
        }
    }

    #[test]
    fn query_rows_read_fields_by_name() {
        let rows = Row::from_batches(&[batch()]).unwrap();
        assert_eq!(
            rows,
            vec![
                Row {
                    s: Some("a".into()),
                    x: 0.5,
                    layer: Some(1)
                },
                Row {
                    s: None,
                    x: 2.0,
                    layer: None
                },
            ]
        );
    }
}
