//! The one way from an error to text: the error and each of its sources, `: `-joined, for a
//! `tracing` field (`error = %ErrorChain(&e)`) or a message sent to a person.
//!
//! Why one crate for one adapter: every crate of the workspace logs errors, and before this
//! there were three copies (one of them skipping sources whose text the outer error already
//! repeats, the others not), and some log sites printed only the outer error, which for a
//! `reqwest` or `sqlx` error is "error sending request" with the reason lost. Binaries do not
//! need it at their edge: `anyhow`'s `{:#}` prints the same chain.

use std::fmt;

/// Displays an error and all its sources on one line. A source whose text the line already
/// contains (libraries that embed their cause's message in their own) is not repeated.
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'a));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = self.0.to_string();
        let mut source = self.0.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !text.is_empty() && !line.contains(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            source = cause.source();
        }
        f.write_str(&line)
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// [`ErrorChain`] as a `String`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    ErrorChain(error).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn every_source_once_in_order() {
        let e = Layer(
            "loading the CA",
            Some(Box::new(Layer(
                "reading /var/lib/ca.key",
                Some(Box::new(Layer("permission denied", None))),
            ))),
        );
        assert_eq!(
            error_chain(&e),
            "loading the CA: reading /var/lib/ca.key: permission denied"
        );
        // A cause the outer message already quotes is not said twice; an empty one not at all.
        let e = Layer(
            "request failed: connection refused",
            Some(Box::new(Layer(
                "connection refused",
                Some(Box::new(Layer("", None))),
            ))),
        );
        assert_eq!(error_chain(&e), "request failed: connection refused");
        assert_eq!(format!("{:?}", ErrorChain(&e)), error_chain(&e));
    }
}
