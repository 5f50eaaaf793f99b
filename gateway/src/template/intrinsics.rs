//! Values: `!Ref` to parameters and pseudo parameters, `!If` and the
//! conditions it names (`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`,
//! `Condition`), scalars read as strings and numbers.

use super::*;

impl Reader {
    /// `node`, or the branch an `!If` chooses.
    pub(super) fn if_branch<'a>(
        &self,
        node: &'a Node,
        key: &str,
    ) -> Result<&'a Node, TemplateError> {
        let arguments = match (&node.value, node.tag.as_deref()) {
            (Value::Seq(items), Some("If")) => items.as_slice(),
            (Value::Map(entries), None) if entries.len() == 1 && entries[0].0 == "Fn::If" => {
                match &entries[0].1.value {
                    Value::Seq(items) => items.as_slice(),
                    _ => return Err(error(node, key, "Fn::If takes [condition, then, else]")),
                }
            }
            _ => return Ok(node),
        };
        let [condition, then, otherwise] = arguments else {
            return Err(error(node, key, "Fn::If takes [condition, then, else]"));
        };
        let name = self.scalar_text(condition, key)?;
        Ok(if self.condition(&name, key, node, 0)? { then } else { otherwise })
    }

    /// The value of the condition `name`.
    pub(super) fn condition(
        &self,
        name: &str,
        key: &str,
        at: &Node,
        depth: usize,
    ) -> Result<bool, TemplateError> {
        let Some(node) = self.conditions.get(name) else {
            return Err(error(at, key, format!("no condition {name:?} in Conditions")));
        };
        self.evaluate(node, &format!("Conditions.{name}"), depth + 1)
    }

    /// `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or` and `Condition`, over
    /// parameters and literals.
    pub(super) fn evaluate(
        &self,
        node: &Node,
        key: &str,
        depth: usize,
    ) -> Result<bool, TemplateError> {
        if depth > 16 {
            return Err(error(node, key, "conditions nested too deep (a cycle?)"));
        }
        let (function, arguments): (&str, &Node) = match (&node.value, node.tag.as_deref()) {
            (_, Some(tag)) => (tag, node),
            (Value::Map(entries), None) if entries.len() == 1 => {
                let (name, value) = &entries[0];
                (name.strip_prefix("Fn::").unwrap_or(name), value)
            }
            _ => return Err(error(node, key, "not a condition")),
        };
        let items = match &arguments.value {
            Value::Seq(items) => items.as_slice(),
            _ if function == "Condition" => &[],
            _ => return Err(error(node, key, format!("Fn::{function} takes a list"))),
        };
        match (function, items) {
            ("Equals", [a, b]) => Ok(self.string(a, key)? == self.string(b, key)?),
            ("Not", [c]) => Ok(!self.evaluate(c, key, depth + 1)?),
            ("And", items) if !items.is_empty() => {
                items.iter().try_fold(true, |all, c| Ok(all && self.evaluate(c, key, depth + 1)?))
            }
            ("Or", items) if !items.is_empty() => {
                items.iter().try_fold(false, |any, c| Ok(any || self.evaluate(c, key, depth + 1)?))
            }
            ("Condition", _) => {
                let name = self.scalar_text(arguments, key)?;
                self.condition(&name, key, node, depth)
            }
            _ => Err(error(node, key, format!("Fn::{function} cannot be evaluated in a pod"))),
        }
    }

    /// A scalar, or a `Ref` to a parameter or `AWS::Region`.
    pub(super) fn string(&self, node: &Node, key: &str) -> Result<String, TemplateError> {
        if let Some(target) = ref_name(node) {
            if target == "AWS::Region" {
                return Ok(self.region.clone());
            }
            return match self.parameters.get(&target) {
                Some(Some(value)) => Ok(value.clone()),
                Some(None) => Err(error(
                    node,
                    key,
                    format!(
                        "parameter {target} has no Default: pass --parameter-overrides {target}=..."
                    ),
                )),
                None => {
                    Err(error(node, key, format!("!Ref {target}: not a parameter of the template")))
                }
            };
        }
        self.scalar_text(node, key)
    }

    pub(super) fn scalar_text(&self, node: &Node, key: &str) -> Result<String, TemplateError> {
        match (&node.value, &node.tag) {
            (Value::Scalar(text), None) => Ok(text.clone()),
            (_, Some(tag)) => Err(error(
                node,
                key,
                format!("!{tag} cannot be resolved in a pod (only !Ref to a parameter)"),
            )),
            (Value::Map(entries), None)
                if entries.len() == 1 && entries[0].0.starts_with("Fn::") =>
            {
                Err(error(
                    node,
                    key,
                    format!(
                        "{} cannot be resolved in a pod (only Ref to a parameter)",
                        entries[0].0
                    ),
                ))
            }
            _ => Err(error(node, key, "must be a plain value")),
        }
    }

    /// The logical id a `!Ref` names.
    pub(super) fn reference(&self, node: &Node, key: &str) -> Result<String, TemplateError> {
        match ref_name(node) {
            Some(target) => Ok(target),
            None => Err(error(node, key, "must be a !Ref to the HttpApi")),
        }
    }

    pub(super) fn number(
        &self,
        node: &Node,
        key: &str,
        min: u64,
        max: u64,
    ) -> Result<u64, TemplateError> {
        let text = self.string(node, key)?;
        match text.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => {
                Err(error(node, key, format!("{text:?} is not a whole number from {min} to {max}")))
            }
        }
    }

    pub(super) fn float(&self, node: &Node, key: &str) -> Result<f64, TemplateError> {
        let text = self.string(node, key)?;
        match text.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 0.0 => Ok(n),
            _ => Err(error(node, key, format!("{text:?} is not a number of 0 or more"))),
        }
    }
}

/// The `Type` of a resource.
pub(super) fn kind(resource: &Node) -> Option<&str> {
    match resource.get("Type").map(|t| &t.value) {
        Some(Value::Scalar(kind)) => Some(kind),
        _ => None,
    }
}

/// What a `!Ref x` or `{"Ref": x}` names.
pub(super) fn ref_name(node: &Node) -> Option<String> {
    match (&node.value, node.tag.as_deref()) {
        (Value::Scalar(text), Some("Ref")) => Some(text.clone()),
        (Value::Map(entries), None) if entries.len() == 1 && entries[0].0 == "Ref" => {
            match &entries[0].1 {
                Node { value: Value::Scalar(text), tag: None, .. } => Some(text.clone()),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A value that needs no resolving, such as a parameter's `Default`.
pub(super) fn literal(node: &Node, key: &str) -> Result<String, TemplateError> {
    match (&node.value, &node.tag) {
        (Value::Scalar(text), None) => Ok(text.clone()),
        _ => Err(error(node, key, "must be a plain value")),
    }
}
