//! YAML with lines and tags: `yaml_rust2`'s own tree forgets both, and a
//! template's errors name the line, and its intrinsic functions are tags
//! (`!Ref`, `!If`, `!GetAtt`). So the tree is built here from the parser's
//! marked events: scalars, sequences and mappings, each with its tag and
//! line. Anchors and aliases are not followed (SAM templates do not use
//! them), and a key repeated in one mapping is an error, as CloudFormation
//! has it. saphyr 0.0.6's marked tree was tried in its place: it keeps tags,
//! but gives collections no position (line 0 for every mapping and
//! sequence), keeps the last of a repeated key silently, and resolves
//! aliases instead of letting them be refused.

use super::TemplateError;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

#[derive(Debug, Clone)]
pub(super) enum Value {
    /// The text, quoted or not: numbers are parsed where one is expected.
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) value: Value,
    /// `Ref` for `!Ref`, and so on.
    pub(super) tag: Option<String>,
    pub(super) line: usize,
}

#[derive(Default)]
pub(super) struct Builder {
    /// Open collections, each with the key it is stored under.
    stack: Vec<(Node, Option<String>)>,
    /// A key read, waiting for its value.
    key: Vec<Option<String>>,
    done: Option<Node>,
    error: Option<TemplateError>,
}

impl Builder {
    pub(super) fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.done = Some(node),
            Some((Node { value: Value::Seq(items), .. }, _)) => items.push(node),
            Some((Node { value: Value::Map(entries), .. }, _)) => {
                let slot = self.key.last_mut().expect("a map has a key slot");
                match slot.take() {
                    None => match node.value {
                        Value::Scalar(key) => *slot = Some(key),
                        _ => {
                            self.error.get_or_insert(TemplateError::Yaml {
                                line: node.line,
                                message: "a key that is not a plain value".into(),
                            });
                        }
                    },
                    // YAML leaves a repeated key to the reader, and most
                    // keep the last; CloudFormation refuses the template.
                    Some(key) => match entries.iter().find(|(k, _)| *k == key) {
                        Some((_, first)) => {
                            self.error.get_or_insert(TemplateError::Yaml {
                                line: node.line,
                                message: format!(
                                    "the key {key:?} appears twice in one mapping (first at line {})",
                                    first.line
                                ),
                            });
                        }
                        None => entries.push((key, node)),
                    },
                }
            }
            Some(_) => unreachable!("only collections are on the stack"),
        }
    }
}

pub(super) fn tag_name(tag: Option<yaml_rust2::parser::Tag>) -> Option<String> {
    tag.map(|t| if t.handle == "!" { t.suffix } else { format!("{}{}", t.handle, t.suffix) })
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::Scalar(text, _, _, tag) => {
                self.push(Node { value: Value::Scalar(text), tag: tag_name(tag), line });
            }
            Event::SequenceStart(_, tag) => self
                .stack
                .push((Node { value: Value::Seq(Vec::new()), tag: tag_name(tag), line }, None)),
            Event::MappingStart(_, tag) => {
                self.stack
                    .push((Node { value: Value::Map(Vec::new()), tag: tag_name(tag), line }, None));
                self.key.push(None);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, _)) = self.stack.pop() {
                    if matches!(node.value, Value::Map(_)) {
                        self.key.pop();
                    }
                    self.push(node);
                }
            }
            Event::Alias(_) => {
                self.error.get_or_insert(TemplateError::Yaml {
                    line,
                    message: "YAML aliases are not supported (CloudFormation refuses them too)"
                        .into(),
                });
            }
            _ => {}
        }
    }
}

pub(super) fn yaml(text: &str) -> Result<Node, TemplateError> {
    let mut builder = Builder::default();
    Parser::new_from_str(text).load(&mut builder, false).map_err(|e| TemplateError::Yaml {
        line: e.marker().line(),
        message: e.info().to_owned(),
    })?;
    if let Some(error) = builder.error {
        return Err(error);
    }
    builder.done.ok_or(TemplateError::Yaml { line: 1, message: "the template is empty".into() })
}

impl Node {
    pub(super) fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub(super) fn entries(&self) -> &[(String, Node)] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }
}

pub(super) fn error(node: &Node, key: &str, why: impl Into<String>) -> TemplateError {
    TemplateError::Key { line: node.line, key: key.to_owned(), why: why.into() }
}

/// A map at `key`, or an error naming it.
pub(super) fn map<'a>(node: &'a Node, key: &str) -> Result<&'a Node, TemplateError> {
    match &node.value {
        Value::Map(_) if node.tag.is_none() => Ok(node),
        _ => Err(error(node, key, "must be a mapping")),
    }
}

/// `base` with `over`'s entries added or replacing its own; maps are
/// merged key by key, as SAM applies `Globals`.
pub(super) fn merged(base: &Node, over: &Node) -> Node {
    let (Value::Map(base_entries), Value::Map(over_entries)) = (&base.value, &over.value) else {
        return over.clone();
    };
    if base.tag.is_some() || over.tag.is_some() {
        return over.clone();
    }
    let mut entries = base_entries.clone();
    for (key, value) in over_entries {
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some((_, old)) => *old = merged(old, value),
            None => entries.push((key.clone(), value.clone())),
        }
    }
    Node { value: Value::Map(entries), tag: None, line: over.line }
}
