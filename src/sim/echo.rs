//! The sim's plain answer, format-neutral: an echo of the prompt, cut by `max_tokens` or
//! a stop sequence, with tokens counted as whitespace-separated words.

use super::prompt::Prompt;

/// Why the answer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Finish {
    /// Complete.
    End,
    /// Cut at `max_tokens`.
    Length,
    /// Cut before this stop sequence.
    StopSequence(String),
    /// Ended with tool calls, which the client is to run.
    ToolUse,
}

/// How much of the last user message the answer quotes.
const ECHO_CHARS: usize = 50;

/// The model named in answers when the request named none.
pub(super) const DEFAULT_MODEL: &str = "sim";

/// `sim: ` and the start of the last user message.
pub(super) fn echo(prompt: &Prompt) -> String {
    let quoted: String = prompt.last_user.chars().take(ECHO_CHARS).collect();
    format!("sim: {quoted}")
}

/// `full` cut at the first stop sequence, then at `max_tokens`.
pub(super) fn cut(full: &str, prompt: &Prompt) -> (String, Finish) {
    let (text, finish) = cut_at_stop(full, &prompt.stop);
    cut_at_length(text, finish, prompt.max_tokens)
}

pub(super) fn prompt_tokens(prompt: &Prompt) -> u32 {
    prompt.texts.iter().map(|t| count_tokens(t)).sum()
}

/// The answer's text in stream pieces: one word each, with the space after it, so that
/// the pieces join to the text. Never empty.
pub(super) fn pieces(text: &str) -> Vec<String> {
    let pieces: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
    if pieces.is_empty() {
        vec![String::new()]
    } else {
        pieces
    }
}

pub(super) fn count_tokens(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

fn cut_at_stop(text: &str, stops: &[String]) -> (String, Finish) {
    let first = stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s)))
        .min_by_key(|(at, _)| *at);
    match first {
        Some((at, stop)) => (text[..at].to_owned(), Finish::StopSequence(stop.clone())),
        None => (text.to_owned(), Finish::End),
    }
}

fn cut_at_length(text: String, finish: Finish, max_tokens: Option<u32>) -> (String, Finish) {
    let max = max_tokens.map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
    if text.split_whitespace().count() <= max {
        return (text, finish);
    }
    let kept: Vec<&str> = text.split_whitespace().take(max).collect();
    (kept.join(" "), Finish::Length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(text: &str) -> Prompt {
        Prompt {
            texts: vec!["be brief".into(), text.into()],
            last_user: text.into(),
            ..Prompt::default()
        }
    }

    fn complete(p: &Prompt) -> (String, Finish) {
        cut(&echo(p), p)
    }

    #[test]
    fn echoes_and_counts() {
        let p = prompt("hello there world");
        let (text, finish) = complete(&p);
        assert_eq!(
            (text.as_str(), finish),
            ("sim: hello there world", Finish::End)
        );
        assert_eq!((prompt_tokens(&p), count_tokens(&text)), (5, 4));
        let long = "x".repeat(80);
        assert_eq!(complete(&prompt(&long)).0.len(), 5 + ECHO_CHARS);
    }

    #[test]
    fn pieces_join_to_the_text() {
        assert_eq!(pieces("sim: a b"), ["sim: ", "a ", "b"]);
        assert_eq!(pieces(""), [""]);
    }

    #[test]
    fn cuts_at_stop_then_length() {
        let mut p = prompt("one two STOP three");
        p.stop = vec!["three".into(), "STOP".into()];
        let (text, finish) = complete(&p);
        assert_eq!(text, "sim: one two ");
        assert_eq!(finish, Finish::StopSequence("STOP".into()));
        p.max_tokens = Some(2);
        let (text, finish) = complete(&p);
        assert_eq!((text.as_str(), finish), ("sim: one", Finish::Length));
        assert_eq!(count_tokens(&text), 2);
    }
}
