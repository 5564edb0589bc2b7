//! `falconry export`: a token shard folder in the formats other trainers read.
//!
//! | format | files (per split: `train`, `validation`) | read by |
//! |---|---|---|
//! | `llmc` | `{split}_NNNNNN.bin`, one per shard | llm.c (`train_gpt2.py`'s `_load_data_shard`, `dataloader.h`) |
//! | `megatron` | `{split}.bin` + `{split}.idx` | Megatron-LM / megatron-core's `IndexedDataset("{split}")` |
//! | `parquet` | `{split}-NNNNN.parquet`, one per shard | HF `datasets` (`load_dataset("parquet", ...)`), column `input_ids` |
//!
//! llm.c's file is a 256-int32 header (magic 20240520, version 1 for uint16 ids or 2 for
//! uint32, the token count) then the ids, little-endian: a shard's own bytes behind the
//! header. Falcon's 65,024 ids fit uint16, as GPT-2's 50,257 do in llm.c.
//!
//! Megatron's `.bin` is the split's ids back to back; its `.idx` (megatron-core's
//! `_IndexWriter`): `MMIDIDX\0\0`, version 1 (u64), the dtype code (u8: 8 uint16, 4 int32),
//! the sequence count and the document count (u64), then per sequence its length (i32) and
//! byte offset (i64), then the document indices (i64, `0..=sequences`). A document is one
//! sequence, its EOS included (as Megatron's `preprocess_data.py --append-eod` writes).
//!
//! Parquet holds one row per document, `input_ids: list<int32>` with the EOS id last.
//!
//! Documents are cut at the EOS ids; a shard whose EOS count differs from its `meta.json`
//! document count is refused. Every file is written atomically.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Builder, ListBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use falconry_shards::atomic::{commit_tmp, create_tmp};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use crate::shards::{Dtype, ShardInfo, ShardTokens, Split, TokenShards};
use crate::{Error, Result};

/// llm.c's data file magic number.
pub const LLMC_MAGIC: i32 = 20240520;
/// llm.c's header: 256 int32.
pub const LLMC_HEADER_INTS: usize = 256;
/// megatron-core's index file header.
pub const MEGATRON_INDEX_HEADER: &[u8; 9] = b"MMIDIDX\x00\x00";

/// A format other trainers read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// llm.c / nanoGPT-style `.bin` with llm.c's header.
    Llmc,
    /// Megatron-LM's indexed dataset, `.bin` + `.idx`.
    Megatron,
    /// HF `datasets` Parquet, column `input_ids`.
    Parquet,
}

impl ExportFormat {
    /// Parses `llmc`, `megatron` or `parquet`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "llmc" => Ok(ExportFormat::Llmc),
            "megatron" => Ok(ExportFormat::Megatron),
            "parquet" => Ok(ExportFormat::Parquet),
            other => Err(Error::Config(format!(
                "--format {other}: not one of llmc, megatron, parquet"
            ))),
        }
    }
}

/// What [`export_shards`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ExportReport {
    /// Files written, in order.
    pub files: Vec<PathBuf>,
    /// Documents exported.
    pub documents: u64,
    /// Tokens exported, EOS ids included.
    pub tokens: u64,
}

/// Writes the shard folder `input` (from `falconry tokenize`) into `output` as `format`.
pub fn export_shards(input: &Path, output: &Path, format: ExportFormat) -> Result<ExportReport> {
    let shards = TokenShards::open(input)?;
    std::fs::create_dir_all(output).map_err(|e| Error::io(output, e))?;
    let mut report = ExportReport::default();
    for (split, name) in [(Split::Train, "train"), (Split::Validation, "validation")] {
        let infos: Vec<&ShardInfo> = shards.shards(split).collect();
        if infos.is_empty() {
            continue;
        }
        let mut loaded = Vec::with_capacity(infos.len());
        for info in &infos {
            let tokens = shards.load(info)?;
            let ends = document_ends(&tokens, shards.meta().eos_id);
            if ends.len() as u64 != info.documents {
                return Err(Error::Shards(falconry_shards::Error::Shards {
                    path: input.join(&info.file),
                    message: format!(
                        "{} EOS ids, meta.json says {} documents",
                        ends.len(),
                        info.documents
                    ),
                }));
            }
            report.documents += info.documents;
            report.tokens += tokens.len() as u64;
            loaded.push((tokens, ends));
        }
        let dtype = shards.meta().dtype;
        match format {
            ExportFormat::Llmc => {
                for (n, (tokens, _)) in loaded.iter().enumerate() {
                    let path = output.join(format!("{name}_{n:06}.bin"));
                    write_llmc(&path, tokens, dtype)?;
                    report.files.push(path);
                }
            }
            ExportFormat::Megatron => {
                let prefix = output.join(name);
                write_megatron(&prefix, &loaded, dtype)?;
                report.files.push(prefix.with_extension("bin"));
                report.files.push(prefix.with_extension("idx"));
            }
            ExportFormat::Parquet => {
                for (n, (tokens, ends)) in loaded.iter().enumerate() {
                    let path = output.join(format!("{name}-{n:05}.parquet"));
                    write_parquet(&path, tokens, ends)?;
                    report.files.push(path);
                }
            }
        }
    }
    Ok(report)
}

/// The index just past each document's EOS id.
fn document_ends(tokens: &ShardTokens, eos: u32) -> Vec<usize> {
    tokens
        .iter()
        .enumerate()
        .filter(|&(_, id)| id == eos)
        .map(|(i, _)| i + 1)
        .collect()
}

/// Streams a file into place atomically.
fn write_file(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let (tmp, file) = create_tmp(path)?;
    let mut out = BufWriter::new(file);
    fill(&mut out).map_err(|e| Error::io(&tmp, e))?;
    let file = out
        .into_inner()
        .map_err(|e| Error::io(&tmp, e.into_error()))?;
    Ok(commit_tmp(file, &tmp, path)?)
}

/// The shard's ids in its own little-endian width.
fn id_bytes(tokens: &ShardTokens, dtype: Dtype) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(tokens.len() * dtype.width());
    falconry_shards::encode_ids(&tokens.to_vec(), dtype, &mut bytes);
    bytes
}

fn write_llmc(path: &Path, tokens: &ShardTokens, dtype: Dtype) -> Result<()> {
    let count = i32::try_from(tokens.len()).map_err(|_| {
        Error::Config(format!(
            "{}: {} tokens do not fit llm.c's int32 count; tokenize with a smaller --shard-tokens",
            path.display(),
            tokens.len()
        ))
    })?;
    let mut header = [0i32; LLMC_HEADER_INTS];
    header[0] = LLMC_MAGIC;
    // llm.c: version 1 holds uint16 ids (GPT-2), version 2 uint32 (LLaMA 3).
    header[1] = match dtype {
        Dtype::Uint16 => 1,
        Dtype::Uint32 => 2,
    };
    header[2] = count;
    write_file(path, |out| {
        for v in header {
            out.write_all(&v.to_le_bytes())?;
        }
        out.write_all(&id_bytes(tokens, dtype))
    })
}

fn write_megatron(prefix: &Path, shards: &[(ShardTokens, Vec<usize>)], dtype: Dtype) -> Result<()> {
    // megatron-core's DType codes; it has no uint32, and ids below 2^31 read the same as int32.
    let code: u8 = match dtype {
        Dtype::Uint16 => 8,
        Dtype::Uint32 => 4,
    };
    write_file(&prefix.with_extension("bin"), |out| {
        for (tokens, _) in shards {
            out.write_all(&id_bytes(tokens, dtype))?;
        }
        Ok(())
    })?;
    let mut lengths: Vec<i32> = Vec::new();
    for (_, ends) in shards {
        let mut start = 0;
        for &end in ends {
            lengths.push((end - start) as i32);
            start = end;
        }
    }
    write_file(&prefix.with_extension("idx"), |out| {
        out.write_all(MEGATRON_INDEX_HEADER)?;
        out.write_all(&1u64.to_le_bytes())?;
        out.write_all(&[code])?;
        out.write_all(&(lengths.len() as u64).to_le_bytes())?;
        out.write_all(&(lengths.len() as u64 + 1).to_le_bytes())?;
        for len in &lengths {
            out.write_all(&len.to_le_bytes())?;
        }
        let mut pointer = 0i64;
        for len in &lengths {
            out.write_all(&pointer.to_le_bytes())?;
            pointer += i64::from(*len) * dtype.width() as i64;
        }
        for doc in 0..=lengths.len() as i64 {
            out.write_all(&doc.to_le_bytes())?;
        }
        Ok(())
    })
}

fn write_parquet(path: &Path, tokens: &ShardTokens, ends: &[usize]) -> Result<()> {
    let parquet_error =
        |e: &dyn std::fmt::Display| Error::io(path, std::io::Error::other(format!("parquet: {e}")));
    let item = Field::new("item", DataType::Int32, true);
    let schema = Arc::new(Schema::new(vec![Field::new(
        "input_ids",
        DataType::List(Arc::new(item.clone())),
        false,
    )]));
    let mut lists = ListBuilder::new(Int32Builder::new()).with_field(Arc::new(item));
    let mut start = 0;
    for &end in ends {
        for i in start..end {
            lists.values().append_value(tokens.get(i) as i32);
        }
        lists.append(true);
        start = end;
    }
    let column: ArrayRef = Arc::new(lists.finish());
    let batch =
        RecordBatch::try_new(schema.clone(), vec![column]).map_err(|e| parquet_error(&e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let (tmp, file) = create_tmp(path)?;
    let mut writer = ArrowWriter::try_new(BufWriter::new(file), schema, Some(props))
        .map_err(|e| parquet_error(&e))?;
    writer.write(&batch).map_err(|e| parquet_error(&e))?;
    let out = writer.into_inner().map_err(|e| parquet_error(&e))?;
    let file = out
        .into_inner()
        .map_err(|e| Error::io(&tmp, e.into_error()))?;
    Ok(commit_tmp(file, &tmp, path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shards::{SplitInfo, TokenMeta};
    use arrow::array::{Array, Int32Array, ListArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    const EOS: u32 = 11;

    /// Two train shards and one validation shard of documents ending in EOS; 65,023 (Falcon's
    /// last id) among them.
    fn shard_folder(dir: &Path) -> Vec<(Split, Vec<Vec<u32>>)> {
        let shards = vec![
            (Split::Train, vec![vec![5, 6, EOS], vec![65_023, EOS]]),
            (Split::Train, vec![vec![7, 8, 9, EOS]]),
            (Split::Validation, vec![vec![300, EOS], vec![EOS]]),
        ];
        let mut infos = Vec::new();
        for (n, (split, docs)) in shards.iter().enumerate() {
            let ids: Vec<u32> = docs.concat();
            let mut bytes = Vec::new();
            falconry_shards::encode_ids(&ids, Dtype::Uint16, &mut bytes);
            let file = format!("shard-{n:05}.bin");
            std::fs::write(dir.join(&file), bytes).unwrap();
            infos.push(ShardInfo {
                file,
                tokens: ids.len() as u64,
                documents: docs.len() as u64,
                split: Some(*split),
            });
        }
        let meta = TokenMeta {
            tokenizer: "falcon".into(),
            tokenizer_xxh3: String::new(),
            vocab_size: 65_024,
            dtype: Dtype::Uint16,
            eos_id: EOS,
            shards: infos,
            split: SplitInfo::default(),
            shard_tokens: 4,
            text_bytes: 0,
        };
        std::fs::write(dir.join("meta.json"), serde_json::to_vec(&meta).unwrap()).unwrap();
        shards
    }

    fn le_i64(b: &[u8], at: usize) -> i64 {
        i64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn llmc_files_carry_the_header_then_the_ids() {
        let dir = tempfile::tempdir().unwrap();
        let shards = shard_folder(dir.path());
        let out = dir.path().join("llmc");
        let report = export_shards(dir.path(), &out, ExportFormat::Llmc).unwrap();
        assert_eq!(report.documents, 5);
        assert_eq!(report.files.len(), 3);
        let bytes = std::fs::read(out.join("train_000000.bin")).unwrap();
        let ints: Vec<i32> = bytes[..1024]
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(&ints[..3], [20240520, 1, 5]);
        assert!(ints[3..].iter().all(|&v| v == 0));
        let ids: Vec<u32> = bytes[1024..]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
            .collect();
        assert_eq!(ids, shards[0].1.concat());
        assert!(out.join("validation_000000.bin").exists());
    }

    #[test]
    fn megatron_index_has_one_sequence_per_document() {
        let dir = tempfile::tempdir().unwrap();
        let shards = shard_folder(dir.path());
        let out = dir.path().join("megatron");
        export_shards(dir.path(), &out, ExportFormat::Megatron).unwrap();
        let idx = std::fs::read(out.join("train.idx")).unwrap();
        assert_eq!(&idx[..9], MEGATRON_INDEX_HEADER);
        assert_eq!(le_i64(&idx, 9), 1);
        assert_eq!(idx[17], 8, "uint16");
        let (sequences, documents) = (le_i64(&idx, 18) as usize, le_i64(&idx, 26) as usize);
        assert_eq!((sequences, documents), (3, 4));
        let at = 34;
        let lengths: Vec<i32> = (0..sequences)
            .map(|i| i32::from_le_bytes(idx[at + 4 * i..at + 4 * i + 4].try_into().unwrap()))
            .collect();
        assert_eq!(lengths, [3, 2, 4]);
        let at = at + 4 * sequences;
        let pointers: Vec<i64> = (0..sequences).map(|i| le_i64(&idx, at + 8 * i)).collect();
        assert_eq!(pointers, [0, 6, 10]);
        let at = at + 8 * sequences;
        let docs: Vec<i64> = (0..documents).map(|i| le_i64(&idx, at + 8 * i)).collect();
        assert_eq!(docs, [0, 1, 2, 3]);
        assert_eq!(idx.len(), at + 8 * documents);
        let bin = std::fs::read(out.join("train.bin")).unwrap();
        let want: Vec<u32> = shards[..2].iter().flat_map(|(_, d)| d.concat()).collect();
        let got: Vec<u32> = bin
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn parquet_holds_one_row_of_input_ids_per_document() {
        let dir = tempfile::tempdir().unwrap();
        let shards = shard_folder(dir.path());
        let out = dir.path().join("parquet");
        export_shards(dir.path(), &out, ExportFormat::Parquet).unwrap();
        let file = File::open(out.join("validation-00000.parquet")).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let mut rows: Vec<Vec<u32>> = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let lists = batch
                .column_by_name("input_ids")
                .unwrap()
                .as_any()
                .downcast_ref::<ListArray>()
                .unwrap();
            for i in 0..lists.len() {
                let v = lists.value(i);
                let ids = v.as_any().downcast_ref::<Int32Array>().unwrap();
                rows.push(ids.values().iter().map(|&x| x as u32).collect());
            }
        }
        assert_eq!(rows, shards[2].1);
    }

    #[test]
    fn a_shard_whose_eos_count_disagrees_with_meta_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        shard_folder(dir.path());
        let mut meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("meta.json")).unwrap()).unwrap();
        meta["shards"][1]["documents"] = 2.into();
        std::fs::write(dir.path().join("meta.json"), meta.to_string()).unwrap();
        let err = export_shards(dir.path(), &dir.path().join("x"), ExportFormat::Llmc)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("shard-00001.bin") && err.contains("1 EOS ids"),
            "{err}"
        );
    }
}
