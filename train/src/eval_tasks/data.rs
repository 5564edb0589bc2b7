//! The benchmark files (`shared/data/eval`, see its PROVENANCE.md) read into the documents
//! lm-eval's task templates render: `doc_to_text` (the query), `doc_to_choice`, `doc_to_target`.
//!
//! | task | file | template (lm-eval 0.4.13 `lm_eval/tasks/...`) |
//! |---|---|---|
//! | ARC | `arc/ARC-*/ARC-*-{Train,Test}.jsonl` (AI2) | `arc/arc_easy.yaml`: `Question: {stem}\nAnswer:`, choices' text, `label.index(answerKey)` |
//! | MMLU | `mmlu/{dev,test}/<subject>_{dev,test}.csv` (HF `cais/mmlu` export) | `mmlu/default/_default_template_yaml`: question stripped, `A. ..` to `D. ..`, `Answer:`; choices `A`-`D` |
//! | TruthfulQA | `truthfulqa/mc_task.json` (v0) | `truthfulqa/truthfulqa_mc1.yaml`: six-QA preamble, `Q: {question}\nA:`; the targets' keys in file order |
//! | HellaSwag | `hellaswag/klosax-text/hellaswag_val_full.txt` (derived dump) | `hellaswag/utils.py`'s `preprocess` on each line; approximate (EVAL-SPEC.md §9) |

use std::path::{Path, PathBuf};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::Error;

/// One multiple-choice document as lm-eval's template renders it.
#[derive(Clone, Debug, PartialEq)]
pub struct McDoc {
    /// `doc_to_text`.
    pub query: String,
    /// `doc_to_choice`, without the target delimiter.
    pub choices: Vec<String>,
    /// `doc_to_target`: the index of the answer in `choices`.
    pub gold: usize,
    /// TruthfulQA mc2's label per choice (1 true, 0 false); empty elsewhere.
    pub labels: Vec<u8>,
}

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Python's `str.isspace`: Unicode White_Space plus the ASCII separators 0x1C-0x1F.
fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `str.strip()`.
pub(crate) fn py_strip(s: &str) -> &str {
    s.trim_matches(py_isspace)
}

/// Python's `str.rstrip()`.
pub(crate) fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(py_isspace)
}

// ---------------------------------------------------------------------------------------------
// ARC
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ArcRow {
    question: ArcQuestion,
    #[serde(rename = "answerKey")]
    answer_key: String,
}

#[derive(Deserialize)]
struct ArcQuestion {
    stem: String,
    choices: Vec<ArcChoice>,
}

#[derive(Deserialize)]
struct ArcChoice {
    text: String,
    label: String,
}

/// An ARC jsonl file (`{"question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}`).
pub fn arc(path: &Path) -> Result<Vec<McDoc>, Error> {
    let text = read(path)?;
    let mut docs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: ArcRow =
            serde_json::from_str(line).map_err(|e| bad(path, format!("line {}: {e}", i + 1)))?;
        let labels: Vec<&str> = row.question.choices.iter().map(|c| &*c.label).collect();
        let gold = labels
            .iter()
            .position(|&l| l == row.answer_key)
            .ok_or_else(|| {
                bad(
                    path,
                    format!(
                        "line {}: answerKey {:?} is none of the labels {labels:?}",
                        i + 1,
                        row.answer_key
                    ),
                )
            })?;
        docs.push(McDoc {
            query: format!("Question: {}\nAnswer:", row.question.stem),
            choices: row.question.choices.into_iter().map(|c| c.text).collect(),
            gold,
            labels: Vec::new(),
        });
    }
    Ok(docs)
}

// ---------------------------------------------------------------------------------------------
// MMLU
// ---------------------------------------------------------------------------------------------

/// The 57 MMLU subjects and their category (the `tag` of `mmlu/default/mmlu_<subject>.yaml`).
pub const MMLU_SUBJECTS: [(&str, &str); 57] = [
    ("abstract_algebra", "stem"),
    ("anatomy", "stem"),
    ("astronomy", "stem"),
    ("business_ethics", "other"),
    ("clinical_knowledge", "other"),
    ("college_biology", "stem"),
    ("college_chemistry", "stem"),
    ("college_computer_science", "stem"),
    ("college_mathematics", "stem"),
    ("college_medicine", "other"),
    ("college_physics", "stem"),
    ("computer_security", "stem"),
    ("conceptual_physics", "stem"),
    ("econometrics", "social_sciences"),
    ("electrical_engineering", "stem"),
    ("elementary_mathematics", "stem"),
    ("formal_logic", "humanities"),
    ("global_facts", "other"),
    ("high_school_biology", "stem"),
    ("high_school_chemistry", "stem"),
    ("high_school_computer_science", "stem"),
    ("high_school_european_history", "humanities"),
    ("high_school_geography", "social_sciences"),
    ("high_school_government_and_politics", "social_sciences"),
    ("high_school_macroeconomics", "social_sciences"),
    ("high_school_mathematics", "stem"),
    ("high_school_microeconomics", "social_sciences"),
    ("high_school_physics", "stem"),
    ("high_school_psychology", "social_sciences"),
    ("high_school_statistics", "stem"),
    ("high_school_us_history", "humanities"),
    ("high_school_world_history", "humanities"),
    ("human_aging", "other"),
    ("human_sexuality", "social_sciences"),
    ("international_law", "humanities"),
    ("jurisprudence", "humanities"),
    ("logical_fallacies", "humanities"),
    ("machine_learning", "stem"),
    ("management", "other"),
    ("marketing", "other"),
    ("medical_genetics", "other"),
    ("miscellaneous", "other"),
    ("moral_disputes", "humanities"),
    ("moral_scenarios", "humanities"),
    ("nutrition", "other"),
    ("philosophy", "humanities"),
    ("prehistory", "humanities"),
    ("professional_accounting", "other"),
    ("professional_law", "humanities"),
    ("professional_medicine", "other"),
    ("professional_psychology", "social_sciences"),
    ("public_relations", "social_sciences"),
    ("security_studies", "social_sciences"),
    ("sociology", "social_sciences"),
    ("us_foreign_policy", "social_sciences"),
    ("virology", "other"),
    ("world_religions", "humanities"),
];

/// The description lm-eval's `_generate_configs.py` gives a subject.
pub fn mmlu_description(subject: &str) -> String {
    format!(
        "The following are multiple choice questions (with answers) about {}.\n\n",
        subject.replace('_', " ")
    )
}

/// An MMLU CSV as HF `cais/mmlu` exports it: header `question,choice0,choice1,choice2,choice3,answer`,
/// `answer` the 0-based index. Quoted fields hold newlines; fields are kept verbatim.
pub fn mmlu(path: &Path) -> Result<Vec<McDoc>, Error> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .map_err(|e| bad(path, e.to_string()))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| bad(path, e.to_string()))?
        .iter()
        .map(str::to_owned)
        .collect();
    let want = [
        "question", "choice0", "choice1", "choice2", "choice3", "answer",
    ];
    if header != want {
        return Err(bad(
            path,
            format!("header {header:?}, expected {want:?} (the HF cais/mmlu export)"),
        ));
    }
    let mut docs = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let r = record.map_err(|e| bad(path, format!("row {}: {e}", i + 1)))?;
        if r.len() != 6 {
            return Err(bad(
                path,
                format!("row {}: {} fields, expected 6", i + 1, r.len()),
            ));
        }
        let gold: usize = r[5]
            .parse()
            .ok()
            .filter(|&g: &usize| g < 4)
            .ok_or_else(|| {
                bad(
                    path,
                    format!("row {}: answer {:?} is not 0-3", i + 1, &r[5]),
                )
            })?;
        docs.push(McDoc {
            query: format!(
                "{}\nA. {}\nB. {}\nC. {}\nD. {}\nAnswer:",
                py_strip(&r[0]),
                &r[1],
                &r[2],
                &r[3],
                &r[4]
            ),
            choices: ["A", "B", "C", "D"].map(String::from).to_vec(),
            gold,
            labels: Vec::new(),
        });
    }
    Ok(docs)
}

// ---------------------------------------------------------------------------------------------
// TruthfulQA
// ---------------------------------------------------------------------------------------------

/// The fixed few-shot preamble of `truthfulqa_mc1.yaml`'s `doc_to_text`.
pub const TRUTHFULQA_PREAMBLE: &str = "Q: What is human life expectancy in the United States?\n\
A: Human life expectancy in the United States is 78 years.\n\n\
Q: Who was president of the United States in 1955?\n\
A: Dwight D. Eisenhower was president of the United States in 1955.\n\n\
Q: Which party did he belong to?\n\
A: He belonged to the Republican Party.\n\n\
Q: What is the square root of banana?\n\
A: I have no comment.\n\n\
Q: How does a telescope work?\n\
A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n\
Q: Where were the 1992 Olympics held?\n\
A: The 1992 Olympics were held in Barcelona, Spain.";

/// A `{answer: label}` object kept in file order (the order is the choice order; a later
/// duplicate key replaces the value in place, as a Python dict does).
struct Targets(Vec<(String, u8)>);

impl<'de> Deserialize<'de> for Targets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Targets;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of answer -> 0 or 1")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Targets, A::Error> {
                let mut out: Vec<(String, u8)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, u8>()? {
                    match out.iter_mut().find(|(key, _)| *key == k) {
                        Some(slot) => slot.1 = v,
                        None => out.push((k, v)),
                    }
                }
                Ok(Targets(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct TruthfulRow {
    question: String,
    mc1_targets: Targets,
    mc2_targets: Targets,
}

/// TruthfulQA's `mc_task.json`: the mc1 and the mc2 documents. The answer of mc1 is its first
/// choice (`doc_to_target: 0`); mc2 scores the probability mass of the label-1 choices.
pub fn truthfulqa(path: &Path) -> Result<(Vec<McDoc>, Vec<McDoc>), Error> {
    let rows: Vec<TruthfulRow> =
        serde_json::from_str(&read(path)?).map_err(|e| bad(path, e.to_string()))?;
    let mut mc1 = Vec::new();
    let mut mc2 = Vec::new();
    for (i, row) in rows.into_iter().enumerate() {
        let query = format!("{TRUTHFULQA_PREAMBLE}\n\nQ: {}\nA:", row.question);
        for (targets, out) in [(row.mc1_targets, &mut mc1), (row.mc2_targets, &mut mc2)] {
            if targets.0.is_empty() {
                return Err(bad(path, format!("question {}: no answers", i + 1)));
            }
            let (choices, labels): (Vec<String>, Vec<u8>) = targets.0.into_iter().unzip();
            out.push(McDoc {
                query: query.clone(),
                choices,
                gold: 0,
                labels,
            });
        }
    }
    Ok((mc1, mc2))
}

// ---------------------------------------------------------------------------------------------
// HellaSwag
// ---------------------------------------------------------------------------------------------

/// `preprocess` of lm-eval's `hellaswag/utils.py`: strip, `" [title]"` -> `". "`, drop every
/// `[...]` (non-greedy, within a line), one pass of double -> single space.
pub fn hellaswag_preprocess(text: &str) -> String {
    static TAG: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let tag = TAG.get_or_init(|| regex::Regex::new(r"\[.*?\]").expect("valid regex"));
    let text = py_strip(text).replace(" [title]", ". ");
    tag.replace_all(&text, "").replace("  ", " ")
}

/// The derived HellaSwag validation dump: 6 lines per item (`activity_label: ctx`, the gold
/// index, 4 endings), each text line through [`hellaswag_preprocess`].
pub fn hellaswag(path: &Path) -> Result<Vec<McDoc>, Error> {
    // Python's text mode reads "\r\n" and "\r" as "\n".
    let text = read(path)?.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    if !lines.len().is_multiple_of(6) {
        return Err(bad(
            path,
            format!(
                "{} lines: not 6 per item (context, gold index, 4 endings)",
                lines.len()
            ),
        ));
    }
    lines
        .chunks(6)
        .enumerate()
        .map(|(i, item)| {
            let gold: usize = item[1]
                .trim()
                .parse()
                .ok()
                .filter(|&g: &usize| g < 4)
                .ok_or_else(|| {
                    bad(
                        path,
                        format!("line {}: gold index {:?} is not 0-3", 6 * i + 2, item[1]),
                    )
                })?;
            Ok(McDoc {
                query: hellaswag_preprocess(item[0]),
                choices: item[2..].iter().map(|e| hellaswag_preprocess(e)).collect(),
                gold,
                labels: Vec::new(),
            })
        })
        .collect()
}

/// `DIR/rel`, checked to exist so that a missing file is named before any work.
pub(crate) fn file(dir: &Path, rel: &str) -> Result<PathBuf, Error> {
    let path = dir.join(rel);
    if path.is_file() {
        Ok(path)
    } else {
        Err(bad(
            &path,
            "benchmark file not found (--data names the folder of shared/data/eval)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellaswag_preprocess_as_lm_eval() {
        // Python: preprocess(" Tv show [title] Step one. [header] Do it  now ")
        assert_eq!(
            hellaswag_preprocess(" Tv show [title] Step one. [header] Do it  now "),
            "Tv show. Step one. Do it now"
        );
        // Non-greedy, and an unclosed bracket stays.
        assert_eq!(hellaswag_preprocess("a [x] b [y] c ["), "a b c [");
    }

    #[test]
    fn python_whitespace() {
        assert_eq!(py_strip("\x1c q \u{3000}"), "q");
        assert_eq!(py_rstrip("a \n"), "a");
    }

    #[test]
    fn truthfulqa_targets_keep_file_order() {
        let t: Targets = serde_json::from_str(r#"{"z": 0, "a": 1, "m": 0, "a": 0}"#).unwrap();
        assert_eq!(
            t.0,
            [("z".into(), 0), ("a".into(), 0), ("m".into(), 0)].to_vec()
        );
    }

    #[test]
    fn malformed_files_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ARC-Test.jsonl");
        std::fs::write(&p, "{\"question\": {\"stem\": \"q\", \"choices\": [{\"text\": \"a\", \"label\": \"A\"}]}, \"answerKey\": \"B\"}\n").unwrap();
        let e = arc(&p).unwrap_err().to_string();
        assert!(e.contains("ARC-Test.jsonl") && e.contains("line 1"), "{e}");
        let p = dir.path().join("x_test.csv");
        std::fs::write(&p, "question,a,b\n").unwrap();
        assert!(mmlu(&p).unwrap_err().to_string().contains("x_test.csv"));
        std::fs::write(
            &p,
            "question,choice0,choice1,choice2,choice3,answer\nq,a,b,c,d,7\n",
        )
        .unwrap();
        let e = mmlu(&p).unwrap_err().to_string();
        assert!(e.contains("row 1") && e.contains("answer"), "{e}");
        let p = dir.path().join("hs.txt");
        std::fs::write(&p, "ctx\n1\na\nb\nc\n").unwrap();
        assert!(hellaswag(&p).unwrap_err().to_string().contains("hs.txt"));
        let p = dir.path().join("mc_task.json");
        std::fs::write(&p, "[{\"question\": \"q\"}]").unwrap();
        assert!(truthfulqa(&p)
            .unwrap_err()
            .to_string()
            .contains("mc_task.json"));
        let e = file(dir.path(), "missing.jsonl").unwrap_err().to_string();
        assert!(e.contains("missing.jsonl"), "{e}");
    }
}
