//! Instruction and chat data for fine-tuning: JSONL examples, a chat template, tokens with a
//! loss mask (the assistant's words only), and packing of short examples into rows.
//!
//! A line is `{"prompt": ..., "response": ...}` or `{"messages": [{"role", "content"}, ...]}`
//! (roles `system`, `user`, `assistant`). The template renders each message as its role's
//! pattern with `{content}` replaced; every assistant turn ends with EOS, so the model learns
//! to stop. Pieces are tokenized one by one (template text, then content), so that where the
//! trained tokens start is exact and a chat prompt at generation time tokenizes as in training.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::inference::encode;
use crate::Error;

/// Who speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions before the conversation.
    System,
    /// The user.
    User,
    /// The model: only its turns are trained.
    Assistant,
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: String,
}

/// How messages become text: per role a pattern with one `{content}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatTemplate {
    /// A system message.
    pub system: String,
    /// A user message.
    pub user: String,
    /// An assistant message (EOS follows it).
    pub assistant: String,
}

impl Default for ChatTemplate {
    /// Falcon-instruct's plain format: `User: ...` / `Assistant: ...` lines.
    fn default() -> Self {
        Self {
            system: "{content}\n".into(),
            user: "User: {content}\n".into(),
            assistant: "Assistant: {content}".into(),
        }
    }
}

const CONTENT: &str = "{content}";

impl ChatTemplate {
    /// Each pattern must hold `{content}` exactly once.
    pub fn validate(&self) -> Result<(), String> {
        for (name, pattern) in [
            ("system", &self.system),
            ("user", &self.user),
            ("assistant", &self.assistant),
        ] {
            if pattern.matches(CONTENT).count() != 1 {
                return Err(format!(
                    "template.{name} must contain {CONTENT} exactly once: {pattern:?}"
                ));
            }
        }
        Ok(())
    }

    /// The text before and after a `role` message's content.
    fn parts(&self, role: Role) -> (&str, &str) {
        let pattern = match role {
            Role::System => &self.system,
            Role::User => &self.user,
            Role::Assistant => &self.assistant,
        };
        pattern.split_once(CONTENT).expect("validated template")
    }

    /// A conversation's tokens, each with whether the loss counts it: an assistant message's
    /// content, the text after it and its EOS.
    pub fn encode(
        &self,
        tokenizer: &tokenizers::Tokenizer,
        messages: &[Message],
        eos: u32,
    ) -> Result<Vec<(u32, bool)>, Error> {
        let mut out = Vec::new();
        let push = |out: &mut Vec<(u32, bool)>, text: &str, trained: bool| {
            if !text.is_empty() {
                out.extend(encode(tokenizer, text)?.into_iter().map(|t| (t, trained)));
            }
            Ok::<_, Error>(())
        };
        for m in messages {
            let (before, after) = self.parts(m.role);
            let trained = m.role == Role::Assistant;
            push(&mut out, before, false)?;
            push(&mut out, &m.content, trained)?;
            push(&mut out, after, trained)?;
            if trained {
                out.push((eos, true));
            }
        }
        Ok(out)
    }

    /// A generation prompt: the conversation, then the assistant pattern up to its content.
    pub fn encode_prompt(
        &self,
        tokenizer: &tokenizers::Tokenizer,
        messages: &[Message],
        eos: u32,
    ) -> Result<Vec<u32>, Error> {
        let mut ids: Vec<u32> = self
            .encode(tokenizer, messages, eos)?
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        let (before, _) = self.parts(Role::Assistant);
        if !before.is_empty() {
            ids.extend(encode(tokenizer, before)?);
        }
        Ok(ids)
    }
}

/// One JSONL line, either form.
#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    Pair { prompt: String, response: String },
    Chat { messages: Vec<Message> },
}

/// Reads instruction / chat JSONL: one conversation per non-empty line, each with an assistant
/// message to learn from.
pub fn read_examples(path: &Path) -> Result<Vec<Vec<Message>>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bad = |n: usize, message: String| Error::Data {
        path: path.to_owned(),
        message: format!("line {n}: {message}"),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let messages = match serde_json::from_str::<Line>(line) {
            Ok(Line::Pair { prompt, response }) => vec![
                Message {
                    role: Role::User,
                    content: prompt,
                },
                Message {
                    role: Role::Assistant,
                    content: response,
                },
            ],
            Ok(Line::Chat { messages }) => messages,
            Err(_) => return Err(bad(
                i + 1,
                "expected {\"prompt\", \"response\"} or {\"messages\": [{\"role\", \"content\"}]} \
                     (roles system, user, assistant)"
                    .into(),
            )),
        };
        if !messages.iter().any(|m| m.role == Role::Assistant) {
            return Err(bad(i + 1, "no assistant message to learn from".into()));
        }
        out.push(messages);
    }
    if out.is_empty() {
        return Err(Error::Data {
            path: path.to_owned(),
            message: "no examples".into(),
        });
    }
    Ok(out)
}

/// Training rows of `seq_len + 1` tokens (inputs are the first `seq_len`, targets the last):
/// short examples packed one after another, whole, the rest padded.
#[derive(Clone, Debug, PartialEq)]
pub struct Packed {
    /// `seq_len + 1` tokens each.
    pub rows: Vec<Vec<u32>>,
    /// Per row, whether the loss counts each of its `seq_len` targets.
    pub masks: Vec<Vec<bool>>,
    /// Examples longer than a row, cut to fit.
    pub truncated: usize,
}

impl Packed {
    /// Targets the loss counts.
    pub fn trained_tokens(&self) -> usize {
        self.masks.iter().flatten().filter(|&&m| m).count()
    }
}

/// Packs tokenized examples greedily in order: an example goes into the current row if it
/// fits, else starts the next; padding (`pad`) is never trained. Packed examples see each
/// other in attention (no block-diagonal mask), as simple packing does.
pub fn pack(examples: &[Vec<(u32, bool)>], seq_len: usize, pad: u32) -> Packed {
    let width = seq_len + 1;
    let mut packed = Packed {
        rows: Vec::new(),
        masks: Vec::new(),
        truncated: 0,
    };
    let mut row: Vec<(u32, bool)> = Vec::with_capacity(width);
    let flush = |row: &mut Vec<(u32, bool)>, packed: &mut Packed| {
        if row.iter().any(|&(_, t)| t) {
            row.resize(width, (pad, false));
            packed.rows.push(row.iter().map(|&(t, _)| t).collect());
            // Target i is token i + 1.
            packed
                .masks
                .push(row[1..].iter().map(|&(_, m)| m).collect());
        }
        row.clear();
    };
    for ex in examples {
        let ex = if ex.len() > width {
            packed.truncated += 1;
            &ex[..width]
        } else {
            &ex[..]
        };
        if row.len() + ex.len() > width {
            flush(&mut row, &mut packed);
        }
        row.extend_from_slice(ex);
    }
    flush(&mut row, &mut packed);
    packed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_whole_examples_and_masks_targets() {
        let ex = |n: u32, trained_from: u32| -> Vec<(u32, bool)> {
            (0..n).map(|i| (100 + i, i >= trained_from)).collect()
        };
        // Rows of 6 tokens: [a a a b b b] then [c c c c c c] (cut from 8), then [d d pad...].
        let p = pack(&[ex(3, 1), ex(3, 2), ex(8, 4), ex(2, 1)], 5, 11);
        assert_eq!(p.rows.len(), 3);
        assert_eq!(p.truncated, 1);
        assert_eq!(p.rows[0], vec![100, 101, 102, 100, 101, 102]);
        assert_eq!(p.masks[0], vec![true, true, false, false, true]);
        assert_eq!(p.rows[2], vec![100, 101, 11, 11, 11, 11]);
        assert_eq!(p.masks[2], vec![true, false, false, false, false]);
        assert_eq!(p.trained_tokens(), 3 + 2 + 1);
    }

    #[test]
    fn template_needs_content_once() {
        assert!(ChatTemplate::default().validate().is_ok());
        let t = ChatTemplate {
            user: "User: \n".into(),
            ..ChatTemplate::default()
        };
        assert!(t.validate().unwrap_err().contains("template.user"));
    }

    #[test]
    fn bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        std::fs::write(
            &path,
            "{\"prompt\": \"a\", \"response\": \"b\"}\n\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n",
        )
        .unwrap();
        let err = read_examples(&path).unwrap_err().to_string();
        assert!(err.contains("line 3: no assistant message"), "{err}");
        std::fs::write(&path, "{\"question\": \"a\"}\n").unwrap();
        let err = read_examples(&path).unwrap_err().to_string();
        assert!(err.contains("line 1: expected"), "{err}");
    }
}
