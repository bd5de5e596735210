//! JSON Merge Patch (RFC 7386), for `PATCH` requests on cached items.
//!
//! The gateway applies the patch to the current value (cached or fetched) and then stores
//! the result as an ordinary put, so the write buffer and the DB API only ever see whole
//! values. The function is total: every target and patch produce a value.

use serde_json::{Map, Value};

/// Applies `patch` to `target` as RFC 7386 §2 specifies.
#[must_use]
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch_members) = patch else {
        return patch.clone();
    };
    let mut result = match target {
        Value::Object(members) => members.clone(),
        _ => Map::new(),
    };
    for (name, value) in patch_members {
        if value.is_null() {
            result.remove(name);
        } else {
            let merged = merge_patch(result.get(name).unwrap_or(&Value::Null), value);
            result.insert(name.clone(), merged);
        }
    }
    Value::Object(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(target: Value, patch: Value, expected: Value) {
        assert_eq!(merge_patch(&target, &patch), expected, "{target} + {patch}");
    }

    #[test]
    fn rfc_7386_appendix_a_examples_hold() {
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (target, patch, expected) in cases {
            check(target, patch, expected);
        }
    }

    #[test]
    fn rfc_7386_section_3_example_holds() {
        let target = json!({
            "title": "Goodbye!",
            "author": {"givenName": "John", "familyName": "Doe"},
            "tags": ["example", "sample"],
            "content": "This will be unchanged"
        });
        let patch = json!({
            "title": "Hello!",
            "phoneNumber": "+01-123-456-7890",
            "author": {"familyName": null},
            "tags": ["example"]
        });
        let expected = json!({
            "title": "Hello!",
            "author": {"givenName": "John"},
            "tags": ["example"],
            "content": "This will be unchanged",
            "phoneNumber": "+01-123-456-7890"
        });
        check(target, patch, expected);
    }
}
