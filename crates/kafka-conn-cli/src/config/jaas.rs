//! The `sasl.jaas.config` line of a Java client configuration, read the
//! way Kafka's `JaasConfig` reads it.
//!
//! Kafka tokenises the value with `java.io.StreamTokenizer`: words made of
//! letters, digits, `.`, `-`, `_` and `$`; strings in double *or* single
//! quotes with backslash escapes (`\n`, `\t`, `\\`, `\"`, `\'`, octal
//! `\101`, any other escaped character stands for itself); `//` and `/* */`
//! comments. One entry is `LoginModule flag key=value ... ;`, the flag one
//! of `required`, `requisite`, `sufficient`, `optional` (any case), and the
//! client accepts exactly one entry. Two quirks of the tokeniser become
//! clear errors here, because the Java client fails on them too: an
//! unquoted value that starts with a digit is read as a number, not a
//! string ("Value not specified for key"), and an unquoted `/` starts a
//! comment. A missing final `;` is an error in Java ("JAAS config entry
//! not terminated by semi-colon"), and so here.
//!
//! Errors never quote the text: the line holds passwords. They name the
//! option and the character position instead.

use std::fmt;

/// How a login module counts (JAAS `LoginModuleControlFlag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Flag {
    /// `required`.
    Required,
    /// `requisite`.
    Requisite,
    /// `sufficient`.
    Sufficient,
    /// `optional`.
    Optional,
}

/// One login module entry: class, flag, options in the order written.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct JaasEntry {
    /// The login module class, e.g.
    /// `org.apache.kafka.common.security.plain.PlainLoginModule`.
    pub(crate) module: String,
    /// Its control flag.
    pub(crate) flag: Flag,
    /// `key=value` options (a later duplicate replaces an earlier one, as
    /// in Java's map).
    pub(crate) options: Vec<(String, String)>,
}

impl fmt::Debug for JaasEntry {
    // Option values may be passwords: show the keys only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("JaasEntry")
            .field("module", &self.module)
            .field("flag", &self.flag)
            .field("option_keys", &keys)
            .finish()
    }
}

impl JaasEntry {
    /// The value of option `key`.
    pub(crate) fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The module's class name without its package.
    pub(crate) fn short_name(&self) -> &str {
        self.module.rsplit('.').next().unwrap_or(&self.module)
    }
}

/// Why a `sasl.jaas.config` value cannot be read. Never holds text from
/// the value other than option names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JaasError {
    /// Nothing but blanks and comments.
    #[error("no login module (the value is empty)")]
    Empty,
    /// The entry does not start with a class name.
    #[error("expected a login module class name at character {0}")]
    NoModule(usize),
    /// No control flag after the class.
    #[error(
        "no control flag after the login module (use required, requisite, sufficient or optional)"
    )]
    NoFlag,
    /// A word that is not a control flag.
    #[error(
        "unknown control flag at character {0}: use required, requisite, sufficient or optional"
    )]
    BadFlag(usize),
    /// `key` without `=value`.
    #[error("no value for option {0:?} (write {0}=\"value\")")]
    NoValue(String),
    /// An unquoted value the Java tokeniser reads as a number or comment.
    #[error("the value of option {0:?} must be quoted: the Java client reads an unquoted value starting with a digit or '/' as no value (write {0}=\"...\")")]
    MustQuote(String),
    /// Something other than an option name where one was expected.
    #[error("expected an option name or ';' at character {0}")]
    Unexpected(usize),
    /// A quoted string without its closing quote.
    #[error("a quoted value opened at character {0} is not closed")]
    Unterminated(usize),
    /// A `/*` comment without `*/`.
    #[error("a /* comment opened at character {0} is not closed")]
    UnterminatedComment(usize),
    /// No `;` after the options.
    #[error("the entry does not end with ';' (the Java client rejects it: \"JAAS config entry not terminated by semi-colon\")")]
    NoSemicolon,
    /// More than one login module.
    #[error("{0} login modules: a client's sasl.jaas.config takes exactly one")]
    SeveralModules(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An unquoted word.
    Word(String),
    /// A quoted string.
    Quoted(String),
    /// What the Java tokeniser reads as a number (an unquoted value
    /// starting with a digit) or a comment start (`/`).
    NotAString,
    Equals,
    Semicolon,
    /// Any other single character.
    Other,
}

/// Characters that continue (or start) a word: what `StreamTokenizer`
/// makes of Kafka's setup (letters, digits, `.`, `-`, `_`, `$`, and
/// non-ASCII letters).
fn word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '$')
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            chars: text.char_indices().peekable(),
        }
    }

    /// Skips blanks and comments.
    fn skip(&mut self) -> Result<(), JaasError> {
        loop {
            match self.chars.peek().copied() {
                Some((_, c)) if c.is_whitespace() => {
                    self.chars.next();
                }
                Some((at, '/')) => {
                    let mut ahead = self.chars.clone();
                    ahead.next();
                    match ahead.peek().map(|&(_, c)| c) {
                        Some('/') => {
                            for (_, c) in self.chars.by_ref() {
                                if c == '\n' || c == '\r' {
                                    break;
                                }
                            }
                        }
                        Some('*') => {
                            self.chars.next();
                            self.chars.next();
                            let mut star = false;
                            loop {
                                match self.chars.next() {
                                    None => return Err(JaasError::UnterminatedComment(at)),
                                    Some((_, '/')) if star => break,
                                    Some((_, c)) => star = c == '*',
                                }
                            }
                        }
                        _ => return Ok(()),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// The next token and its character position; `None` at the end.
    fn next(&mut self) -> Result<Option<(usize, Token)>, JaasError> {
        self.skip()?;
        let Some((at, c)) = self.chars.next() else {
            return Ok(None);
        };
        let token = match c {
            '=' => Token::Equals,
            ';' => Token::Semicolon,
            '"' | '\'' => Token::Quoted(self.quoted(at, c)?),
            // parseNumbers(): a digit starts a number, whose string value
            // is null; a lone '/' starts a comment to the end of the line.
            c if c.is_ascii_digit() => {
                self.eat_word();
                Token::NotAString
            }
            '/' => {
                for (_, c) in self.chars.by_ref() {
                    if c == '\n' || c == '\r' {
                        break;
                    }
                }
                Token::NotAString
            }
            c if word_char(c) => {
                let mut word = String::from(c);
                word.push_str(&self.eat_word());
                Token::Word(word)
            }
            _ => Token::Other,
        };
        Ok(Some((at, token)))
    }

    fn eat_word(&mut self) -> String {
        let mut word = String::new();
        while let Some(&(_, c)) = self.chars.peek() {
            if !word_char(c) {
                break;
            }
            word.push(c);
            self.chars.next();
        }
        word
    }

    /// A quoted string after its opening `quote` (StreamTokenizer's escapes).
    fn quoted(&mut self, at: usize, quote: char) -> Result<String, JaasError> {
        let mut out = String::new();
        loop {
            let Some((_, c)) = self.chars.next() else {
                return Err(JaasError::Unterminated(at));
            };
            match c {
                c if c == quote => return Ok(out),
                // Java ends the string silently at a line end; a value
                // split by a line end is a mistake worth naming.
                '\n' | '\r' => return Err(JaasError::Unterminated(at)),
                '\\' => {
                    let Some((_, e)) = self.chars.next() else {
                        return Err(JaasError::Unterminated(at));
                    };
                    match e {
                        'a' => out.push('\x07'),
                        'b' => out.push('\x08'),
                        'f' => out.push('\x0c'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'v' => out.push('\x0b'),
                        '0'..='7' => {
                            // Up to three octal digits, the first 0-3 for three.
                            let mut value = e.to_digit(8).unwrap_or(0);
                            let max = if e <= '3' { 2 } else { 1 };
                            for _ in 0..max {
                                match self.chars.peek().and_then(|&(_, d)| d.to_digit(8)) {
                                    Some(d) => {
                                        value = value * 8 + d;
                                        self.chars.next();
                                    }
                                    None => break,
                                }
                            }
                            out.push(char::from_u32(value).unwrap_or('\u{fffd}'));
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }
}

/// Parses a `sasl.jaas.config` value: exactly one login module entry.
pub(crate) fn parse(text: &str) -> Result<JaasEntry, JaasError> {
    let mut lexer = Lexer::new(text);
    let mut entries = Vec::new();
    while let Some((at, token)) = lexer.next()? {
        let Token::Word(module) = token else {
            return Err(JaasError::NoModule(at));
        };
        let flag = match lexer.next()? {
            None => return Err(JaasError::NoFlag),
            Some((at, Token::Word(w))) => match w.to_ascii_lowercase().as_str() {
                "required" => Flag::Required,
                "requisite" => Flag::Requisite,
                "sufficient" => Flag::Sufficient,
                "optional" => Flag::Optional,
                _ => return Err(JaasError::BadFlag(at)),
            },
            Some((at, _)) => return Err(JaasError::BadFlag(at)),
        };
        let mut options: Vec<(String, String)> = Vec::new();
        loop {
            let key = match lexer.next()? {
                None => return Err(JaasError::NoSemicolon),
                Some((_, Token::Semicolon)) => break,
                Some((_, Token::Word(k) | Token::Quoted(k))) => k,
                Some((at, _)) => return Err(JaasError::Unexpected(at)),
            };
            match lexer.next()? {
                Some((_, Token::Equals)) => {}
                _ => return Err(JaasError::NoValue(key)),
            }
            let value = match lexer.next()? {
                Some((_, Token::Word(v) | Token::Quoted(v))) => v,
                Some((_, Token::NotAString)) => return Err(JaasError::MustQuote(key)),
                _ => return Err(JaasError::NoValue(key)),
            };
            options.retain(|(k, _)| *k != key);
            options.push((key, value));
        }
        entries.push(JaasEntry {
            module,
            flag,
            options,
        });
    }
    match entries.len() {
        0 => Err(JaasError::Empty),
        1 => Ok(entries.remove(0)),
        n => Err(JaasError::SeveralModules(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(e: &JaasEntry) -> Vec<(&str, &str)> {
        e.options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn plain_as_in_the_kafka_docs() {
        let e = parse(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="alice-secret";"#,
        )
        .unwrap();
        assert_eq!(
            e.module,
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        );
        assert_eq!(e.short_name(), "PlainLoginModule");
        assert_eq!(e.flag, Flag::Required);
        assert_eq!(
            opts(&e),
            [("username", "alice"), ("password", "alice-secret")]
        );
    }

    #[test]
    fn scram_with_single_quotes_escapes_and_spread_over_lines() {
        // A .properties value continued with backslash-newline arrives as
        // one line; a YAML/Helm value often keeps real newlines.
        let e = parse(
            "org.apache.kafka.common.security.scram.ScramLoginModule REQUIRED\n  username='bob'\n  password=\"p\\\"a\\\\ss'w\\101rd\\n\"\n  ;",
        )
        .unwrap();
        assert_eq!(e.flag, Flag::Required);
        assert_eq!(e.option("username"), Some("bob"));
        assert_eq!(e.option("password"), Some("p\"a\\ss'wArd\n"));
        let e = parse(r#"x.ScramLoginModule required password='it\'s "quoted"';"#).unwrap();
        assert_eq!(e.option("password"), Some(r#"it's "quoted""#));
    }

    #[test]
    fn oauthbearer_unsecured_options_and_comments() {
        let e = parse(
            r#"org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule optional
               /* the unsecured token builder's options */
               unsecuredLoginStringClaim_sub="kafka-client" // the principal
               unsecuredLoginLifetimeSeconds="3600"
               unsecuredLoginExtension_traceId=abc-123
               ;"#,
        )
        .unwrap();
        assert_eq!(e.flag, Flag::Optional);
        assert_eq!(
            opts(&e),
            [
                ("unsecuredLoginStringClaim_sub", "kafka-client"),
                ("unsecuredLoginLifetimeSeconds", "3600"),
                ("unsecuredLoginExtension_traceId", "abc-123"),
            ]
        );
    }

    #[test]
    fn kerberos_with_keytab_and_principal() {
        let e = parse(
            r#"com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true storeKey=true keyTab="/etc/security/keytabs/kafka_client.keytab" principal="kafka-client-1@EXAMPLE.COM" serviceName="kafka";"#,
        )
        .unwrap();
        assert_eq!(e.short_name(), "Krb5LoginModule");
        assert_eq!(e.option("useKeyTab"), Some("true"));
        assert_eq!(
            e.option("keyTab"),
            Some("/etc/security/keytabs/kafka_client.keytab")
        );
        assert_eq!(e.option("principal"), Some("kafka-client-1@EXAMPLE.COM"));
        assert_eq!(e.option("serviceName"), Some("kafka"));
    }

    #[test]
    fn flags_in_any_case_and_empty_options() {
        for (text, flag) in [
            ("M Requisite;", Flag::Requisite),
            ("M SUFFICIENT ;", Flag::Sufficient),
            ("M optional;", Flag::Optional),
        ] {
            let e = parse(text).unwrap();
            assert_eq!(e.flag, flag);
            assert!(e.options.is_empty());
        }
        assert_eq!(parse("M mandatory;"), Err(JaasError::BadFlag(2)));
        assert_eq!(parse("M"), Err(JaasError::NoFlag));
    }

    #[test]
    fn a_missing_semicolon_is_the_java_error() {
        let e = parse(r#"x.PlainLoginModule required username="a" password="b""#).unwrap_err();
        assert_eq!(e, JaasError::NoSemicolon);
        assert!(
            e.to_string().contains("not terminated by semi-colon"),
            "{e}"
        );
    }

    #[test]
    fn unquoted_numbers_and_paths_must_be_quoted() {
        let e = parse("x.OAuthBearerLoginModule required unsecuredLoginLifetimeSeconds=3600;")
            .unwrap_err();
        assert_eq!(
            e,
            JaasError::MustQuote("unsecuredLoginLifetimeSeconds".into())
        );
        let e = parse("x.Krb5LoginModule required keyTab=/etc/k.keytab;").unwrap_err();
        assert_eq!(e, JaasError::MustQuote("keyTab".into()));
        // A word that merely contains digits is fine.
        let e = parse("x.PlainLoginModule required username=user1;").unwrap();
        assert_eq!(e.option("username"), Some("user1"));
    }

    #[test]
    fn malformed_entries_are_named_without_quoting_values() {
        let secret = "hunter2-very-secret";
        let cases = [
            (
                format!("x.P required password=\"{secret}"),
                JaasError::Unterminated(22),
            ),
            (
                format!("x.P required password {secret};"),
                JaasError::NoValue("password".into()),
            ),
            (
                format!("x.P required password=;{secret}"),
                JaasError::NoValue("password".into()),
            ),
            (
                format!("x.P required ={secret};"),
                JaasError::Unexpected(13),
            ),
            (
                format!("x.P required /* {secret}"),
                JaasError::UnterminatedComment(13),
            ),
            (
                format!("\"x.P\" required a=\"{secret}\";"),
                JaasError::NoModule(0),
            ),
            ("  // only a comment".to_owned(), JaasError::Empty),
            (
                format!("x.P required a=\"{secret}\"; y.Q required;"),
                JaasError::SeveralModules(2),
            ),
        ];
        for (text, expected) in cases {
            let e = parse(&text).unwrap_err();
            assert_eq!(e, expected, "{text}");
            assert!(!e.to_string().contains(secret), "{e}");
            assert!(!format!("{e:?}").contains(secret), "{e:?}");
        }
    }

    #[test]
    fn debug_output_hides_values() {
        let e =
            parse(r#"x.PlainLoginModule required username="alice" password="s3cr3t";"#).unwrap();
        let debug = format!("{e:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("password"), "{debug}");
    }

    #[test]
    fn a_later_duplicate_option_wins() {
        let e = parse(r#"x.P required username="a" username="b";"#).unwrap();
        assert_eq!(opts(&e), [("username", "b")]);
    }
}
