//! One way to name a state: [`word_enum!`](crate::word_enum).
//!
//! Health, source states, update states and the controller's job and role words are each
//! stored, filtered on and sent as one lowercase word. Each used to carry its own hand-written
//! `as_str`, `Display`, `FromStr` and "not one of" error, which drifted apart (a variant added
//! to the enum but not to `ALL`, an error that listed stale words). The macro writes all of
//! them from one table, so the word list, the parser and the error message cannot disagree.

/// Gives a field-less enum its words: `ALL` (every variant, in the table's order),
/// `as_str`, `Display`, `FromStr` and an error type for a word that is not one of them
/// (`<noun> `x` is not one of a, b, c`).
///
/// ```
/// #[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// pub enum Colour { Red, DarkBlue }
/// unity_protocol::word_enum!(Colour, UnknownColour, "colour", {
///     Red => "red",
///     DarkBlue => "dark_blue",
/// });
/// assert_eq!(Colour::DarkBlue.as_str(), "dark_blue");
/// assert_eq!("red".parse::<Colour>(), Ok(Colour::Red));
/// assert_eq!(
///     "green".parse::<Colour>().unwrap_err().to_string(),
///     "colour `green` is not one of red, dark_blue"
/// );
/// ```
///
/// Enums that cross the wire keep their serde derive (`rename_all = "snake_case"`); each such
/// enum has a test that its serde words are the table's.
#[macro_export]
macro_rules! word_enum {
    ($name:ident, $unknown:ident, $noun:literal, {
        $first:ident => $first_word:literal $(, $variant:ident => $word:literal)* $(,)?
    }) => {
        impl $name {
            /// Every value, in the order of its word table.
            pub const ALL: [$name; 1 $(+ $crate::word_enum!(@one $variant))*] =
                [$name::$first $(, $name::$variant)*];

            /// The word the wire (serde), the database and the API use.
            pub fn as_str(self) -> &'static str {
                match self {
                    $name::$first => $first_word,
                    $($name::$variant => $word,)*
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        #[doc = concat!("A word that is not one of [`", stringify!($name), "::as_str`]'s.")]
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $unknown(pub String);

        impl ::std::fmt::Display for $unknown {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(
                    f,
                    concat!($noun, " `{}` is not one of ", $first_word $(, ", ", $word)*),
                    self.0
                )
            }
        }

        impl ::std::error::Error for $unknown {}

        #[doc = concat!("The inverse of [`", stringify!($name), "::as_str`]: the one parser of its words, for API filters and stored rows alike.")]
        impl ::std::str::FromStr for $name {
            type Err = $unknown;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .into_iter()
                    .find(|value| value.as_str() == text)
                    .ok_or_else(|| $unknown(text.to_owned()))
            }
        }
    };
    (@one $variant:ident) => {
        1
    };
}
