//! The sim's answer, format-neutral: an echo of the prompt, cut by `max_tokens` or a stop
//! sequence, with tokens counted as whitespace-separated words.

/// A parsed chat request, whichever format it came in.
#[derive(Debug, Default)]
pub(super) struct Prompt {
    pub model: String,
    /// Every text of the request (system included), for the prompt token count.
    pub texts: Vec<String>,
    /// The last user message, which the answer echoes.
    pub last_user: String,
    pub max_tokens: Option<u32>,
    pub stop: Vec<String>,
    /// `stream: true`: answer as server-sent events.
    pub stream: bool,
    /// OpenAI's `stream_options.include_usage`: a last chunk with the usage.
    pub include_usage: bool,
}

/// Why the answer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Finish {
    /// Complete.
    End,
    /// Cut at `max_tokens`.
    Length,
    /// Cut before this stop sequence.
    StopSequence(String),
}

#[derive(Debug)]
pub(super) struct Completion {
    pub text: String,
    pub finish: Finish,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// How much of the last user message the answer quotes.
const ECHO_CHARS: usize = 50;

/// The model named in answers when the request named none.
pub(super) const DEFAULT_MODEL: &str = "sim";

pub(super) fn complete(prompt: &Prompt) -> Completion {
    let quoted: String = prompt.last_user.chars().take(ECHO_CHARS).collect();
    let full = format!("sim: {quoted}");
    let (text, finish) = cut_at_stop(&full, &prompt.stop);
    let (text, finish) = cut_at_length(text, finish, prompt.max_tokens);
    let prompt_tokens = prompt.texts.iter().map(|t| count_tokens(t)).sum();
    Completion {
        completion_tokens: count_tokens(&text),
        text,
        finish,
        prompt_tokens,
    }
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

    #[test]
    fn echoes_and_counts() {
        let c = complete(&prompt("hello there world"));
        assert_eq!(
            (c.text.as_str(), c.finish),
            ("sim: hello there world", Finish::End)
        );
        assert_eq!((c.prompt_tokens, c.completion_tokens), (5, 4));
        let long = "x".repeat(80);
        assert_eq!(complete(&prompt(&long)).text.len(), 5 + ECHO_CHARS);
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
        let c = complete(&p);
        assert_eq!(c.text, "sim: one two ");
        assert_eq!(c.finish, Finish::StopSequence("STOP".into()));
        p.max_tokens = Some(2);
        let c = complete(&p);
        assert_eq!((c.text.as_str(), c.finish), ("sim: one", Finish::Length));
        assert_eq!(c.completion_tokens, 2);
    }
}
