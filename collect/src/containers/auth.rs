//! `WWW-Authenticate` challenges (RFC 7235) as registries send them:
//! `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"`.
//! Pure, no I/O.

use std::collections::BTreeMap;

/// One challenge: a scheme (lowercased) and its parameters (keys lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }
}

/// The parameters of a Bearer challenge that the token flow needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerChallenge {
    pub realm: String,
    pub service: Option<String>,
    pub scope: Option<String>,
}

/// Why a `WWW-Authenticate` value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("empty WWW-Authenticate header")]
    Empty,
    #[error("expected an auth scheme at byte {at}")]
    ExpectedScheme { at: usize },
    #[error("expected `=` after parameter `{name}` at byte {at}")]
    ExpectedEquals { name: String, at: usize },
    #[error("unterminated quoted string starting at byte {at}")]
    UnterminatedQuote { at: usize },
    #[error("unexpected character {found:?} at byte {at}")]
    Unexpected { found: char, at: usize },
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }
    fn skip_ws(&mut self) {
        while let Some(c) = self.peek()
            && (c == ' ' || c == '\t')
        {
            self.pos += 1;
        }
    }
    fn skip_ws_and_commas(&mut self) {
        while let Some(c) = self.peek()
            && (c == ' ' || c == '\t' || c == ',')
        {
            self.pos += 1;
        }
    }
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek()
            && is_token_char(c)
        {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }
    /// A quoted string (opening quote already current) with `\` escapes.
    fn quoted(&mut self) -> Result<String, ChallengeError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.s[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => out.push(escaped),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(ChallengeError::UnterminatedQuote { at: start })
    }
}

/// Parses every challenge in a `WWW-Authenticate` value.
pub fn parse_www_authenticate(value: &str) -> Result<Vec<Challenge>, ChallengeError> {
    let mut cur = Cursor { s: value, pos: 0 };
    let mut challenges: Vec<Challenge> = Vec::new();
    cur.skip_ws_and_commas();
    if cur.peek().is_none() {
        return Err(ChallengeError::Empty);
    }
    while cur.peek().is_some() {
        let at = cur.pos;
        let scheme = cur.token();
        if scheme.is_empty() {
            return Err(match cur.peek() {
                Some(found) => ChallengeError::Unexpected { found, at },
                None => ChallengeError::ExpectedScheme { at },
            });
        }
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: BTreeMap::new(),
        };
        cur.skip_ws();
        // Parameters until the next challenge (a token followed by a space, not `=`).
        loop {
            cur.skip_ws_and_commas();
            let mark = cur.pos;
            let name = cur.token();
            if name.is_empty() {
                match cur.peek() {
                    None => break,
                    Some(found) => {
                        return Err(ChallengeError::Unexpected { found, at: cur.pos });
                    }
                }
            }
            cur.skip_ws();
            if cur.peek() != Some('=') {
                // token68 (`Basic abc==` is not used by registries) or the next scheme.
                if cur.peek().is_none() && challenge.params.is_empty() {
                    return Err(ChallengeError::ExpectedEquals {
                        name: name.to_owned(),
                        at: cur.pos,
                    });
                }
                cur.pos = mark;
                break;
            }
            cur.pos += 1;
            cur.skip_ws();
            let value = if cur.peek() == Some('"') {
                cur.quoted()?
            } else {
                cur.token().to_owned()
            };
            challenge.params.insert(name.to_ascii_lowercase(), value);
        }
        challenges.push(challenge);
    }
    Ok(challenges)
}

/// The first Bearer challenge with a realm, if any.
pub fn bearer(challenges: &[Challenge]) -> Option<BearerChallenge> {
    challenges.iter().find_map(|c| {
        if c.scheme != "bearer" {
            return None;
        }
        let realm = c.param("realm").filter(|r| !r.is_empty())?;
        Some(BearerChallenge {
            realm: realm.to_owned(),
            service: c.param("service").map(str::to_owned),
            scope: c.param("scope").map(str::to_owned),
        })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn docker_hub_challenge() {
        let v = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#;
        let c = parse_www_authenticate(v).unwrap();
        assert_eq!(c.len(), 1);
        let b = bearer(&c).unwrap();
        assert_eq!(b.realm, "https://auth.docker.io/token");
        assert_eq!(b.service.as_deref(), Some("registry.docker.io"));
        assert_eq!(b.scope.as_deref(), Some("repository:library/nginx:pull"));
    }

    #[test]
    fn ghcr_and_basic_and_several_challenges() {
        let c = parse_www_authenticate(
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:user/image:pull""#,
        )
        .unwrap();
        assert_eq!(bearer(&c).unwrap().service.as_deref(), Some("ghcr.io"));
        let c = parse_www_authenticate(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c[0].scheme, "basic");
        assert!(bearer(&c).is_none());
        let c = parse_www_authenticate(
            r#"Basic realm="x", Bearer realm="https://a/t", service=s, error="insufficient_scope""#,
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].param("service"), Some("s"));
        assert_eq!(c[1].param("error"), Some("insufficient_scope"));
        assert_eq!(bearer(&c).unwrap().realm, "https://a/t");
        // escapes, case-insensitive scheme and keys
        let c = parse_www_authenticate(r#"BEARER Realm="a\"b""#).unwrap();
        assert_eq!(bearer(&c).unwrap().realm, "a\"b");
    }

    #[test]
    fn bearer_without_realm_is_not_usable() {
        let c = parse_www_authenticate(r#"Bearer service="x""#).unwrap();
        assert!(bearer(&c).is_none());
        let c = parse_www_authenticate(r#"Bearer realm="""#).unwrap();
        assert!(bearer(&c).is_none());
        let c = parse_www_authenticate("Bearer").unwrap();
        assert!(bearer(&c).is_none());
    }

    #[test]
    fn malformed_values_are_precise_errors() {
        assert_eq!(parse_www_authenticate(""), Err(ChallengeError::Empty));
        assert_eq!(parse_www_authenticate(" , "), Err(ChallengeError::Empty));
        assert_eq!(
            parse_www_authenticate(r#"Bearer realm="abc"#),
            Err(ChallengeError::UnterminatedQuote { at: 13 })
        );
        assert!(matches!(
            parse_www_authenticate("=x"),
            Err(ChallengeError::Unexpected { found: '=', at: 0 })
        ));
        assert!(matches!(
            parse_www_authenticate("Bearer realm=\"x\" {"),
            Err(ChallengeError::Unexpected { found: '{', .. })
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let samples = [
            "\"",
            "\\",
            "a=\"\\",
            "Bearer ,,,, =",
            "Bearer realm",
            "Bearer realm=",
            "ü",
            "a b c",
            "Bearer realm=\"ü\\",
            "a=b=c",
            "\u{0}",
            ",a",
            "a,",
            "Bearer realm=\"x\",,,scope",
        ];
        for s in samples {
            let _ = parse_www_authenticate(s).map(|c| bearer(&c));
        }
        for len in 0..48 {
            let s: String = (0..len)
                .map(|i| ['B', '=', '"', ',', ' ', '\\', 'r'][(i * 7 + len) % 7])
                .collect();
            let _ = parse_www_authenticate(&s);
        }
    }
}
