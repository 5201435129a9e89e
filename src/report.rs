//! Renders errors with their causes for people: one line per cause, never `Debug` output.

use std::error::Error;

/// `err` and each of its sources, joined with `": "` (for log fields and JSON reasons).
pub fn chain(err: &(dyn Error + 'static)) -> String {
    causes(err).collect::<Vec<_>>().join(": ")
}

/// `err` on the first line, then `  caused by: ...` per source (for stderr before exiting).
pub fn multiline(err: &(dyn Error + 'static)) -> String {
    let mut lines = causes(err);
    let mut text = lines.next().unwrap_or_default();
    for cause in lines {
        text.push_str("\n  caused by: ");
        text.push_str(&cause);
    }
    text
}

/// The messages of `err` and its sources, skipping a source whose text its parent already shows.
fn causes(err: &(dyn Error + 'static)) -> impl Iterator<Item = String> {
    let mut shown: Vec<String> = Vec::new();
    let mut next = Some(err);
    std::iter::from_fn(move || {
        while let Some(current) = next {
            next = current.source();
            let message = current.to_string();
            if !shown.iter().any(|earlier| earlier.contains(&message)) {
                shown.push(message.clone());
                return Some(message);
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot start")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_follow_the_error() {
        let err = Outer(std::io::Error::other("port in use"));
        assert_eq!(chain(&err), "cannot start: port in use");
        assert_eq!(multiline(&err), "cannot start\n  caused by: port in use");
    }
}
