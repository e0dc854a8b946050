//! OTLP/JSON (the protobuf JSON mapping as OTLP specifies it) into the
//! same messages the protobuf path decodes: lowerCamelCase names, 64-bit
//! integers as strings or numbers, `traceId` / `spanId` as hex, bytes as
//! base64, enums as numbers. Unknown fields are ignored.

use super::messages::{
    AnyValue, ArrayValue, ExportLogsServiceRequest, KeyValue, KeyValueList, LogRecord, Resource,
    ResourceLogs, ScopeLogs, Value as Any,
};
use serde_json::{Map, Value};

type Result<T> = std::result::Result<T, String>;

pub(crate) fn request(v: &Value) -> Result<ExportLogsServiceRequest> {
    let obj = object(v, "the body")?;
    Ok(ExportLogsServiceRequest {
        resource_logs: list(obj, "resourceLogs", resource_logs)?,
    })
}

fn resource_logs(v: &Value) -> Result<ResourceLogs> {
    let obj = object(v, "a resourceLogs item")?;
    let resource = match obj.get("resource") {
        None | Some(Value::Null) => None,
        Some(r) => Some(Resource {
            attributes: list(object(r, "resource")?, "attributes", key_value)?,
        }),
    };
    Ok(ResourceLogs {
        resource,
        scope_logs: list(obj, "scopeLogs", scope_logs)?,
    })
}

fn scope_logs(v: &Value) -> Result<ScopeLogs> {
    let obj = object(v, "a scopeLogs item")?;
    Ok(ScopeLogs {
        scope: None,
        log_records: list(obj, "logRecords", log_record)?,
    })
}

fn log_record(v: &Value) -> Result<LogRecord> {
    let obj = object(v, "a logRecord")?;
    Ok(LogRecord {
        time_unix_nano: uint(obj.get("timeUnixNano"), "timeUnixNano")?,
        observed_time_unix_nano: uint(obj.get("observedTimeUnixNano"), "observedTimeUnixNano")?,
        severity_number: i32::try_from(uint(obj.get("severityNumber"), "severityNumber")?)
            .map_err(|_| "severityNumber is out of range".to_owned())?,
        severity_text: string(obj.get("severityText"), "severityText")?,
        body: obj
            .get("body")
            .filter(|b| !b.is_null())
            .map(any_value)
            .transpose()?,
        attributes: list(obj, "attributes", key_value)?,
        trace_id: hex_id(obj.get("traceId"), "traceId")?,
        span_id: hex_id(obj.get("spanId"), "spanId")?,
        event_name: string(obj.get("eventName"), "eventName")?,
    })
}

fn key_value(v: &Value) -> Result<KeyValue> {
    let obj = object(v, "an attribute")?;
    Ok(KeyValue {
        key: string(obj.get("key"), "an attribute's key")?,
        value: obj
            .get("value")
            .filter(|b| !b.is_null())
            .map(any_value)
            .transpose()?,
    })
}

fn any_value(v: &Value) -> Result<AnyValue> {
    let obj = object(v, "a value")?;
    let value = if let Some(s) = obj.get("stringValue") {
        Some(Any::String(string(Some(s), "stringValue")?))
    } else if let Some(b) = obj.get("boolValue") {
        Some(Any::Bool(
            b.as_bool().ok_or("boolValue must be true or false")?,
        ))
    } else if let Some(i) = obj.get("intValue") {
        Some(Any::Int(int(i)?))
    } else if let Some(d) = obj.get("doubleValue") {
        Some(Any::Double(
            d.as_f64().ok_or("doubleValue must be a number")?,
        ))
    } else if let Some(a) = obj.get("arrayValue") {
        Some(Any::Array(ArrayValue {
            values: list(object(a, "arrayValue")?, "values", any_value)?,
        }))
    } else if let Some(kv) = obj.get("kvlistValue") {
        Some(Any::KvList(KeyValueList {
            values: list(object(kv, "kvlistValue")?, "values", key_value)?,
        }))
    } else if let Some(b) = obj.get("bytesValue") {
        use base64::Engine as _;
        let text = b.as_str().ok_or("bytesValue must be base64 text")?;
        Some(Any::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| "bytesValue must be base64 text")?,
        ))
    } else {
        None
    };
    Ok(AnyValue { value })
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| format!("{what} must be a JSON object"))
}

fn list<T>(
    obj: &Map<String, Value>,
    name: &str,
    item: impl Fn(&Value) -> Result<T>,
) -> Result<Vec<T>> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(item).collect(),
        Some(_) => Err(format!("{name} must be an array")),
    }
}

fn string(v: Option<&Value>, name: &str) -> Result<String> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("{name} must be a string")),
    }
}

/// A 64-bit integer as the JSON mapping writes it: a string or a number.
fn int(v: &Value) -> Result<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("{n} is not a whole number")),
        Value::String(s) => s
            .parse()
            .map_err(|_| format!("{s:?} is not a whole number")),
        _ => Err("an integer must be a number or a string".into()),
    }
}

fn uint(v: Option<&Value>, name: &str) -> Result<u64> {
    match v {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| format!("{name} must be a whole number")),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| format!("{name} must be a whole number")),
        Some(_) => Err(format!("{name} must be a number or a string")),
    }
}

fn hex_id(v: Option<&Value>, name: &str) -> Result<Vec<u8>> {
    let text = string(v, name)?;
    hex::decode(&text).map_err(|_| format!("{name} must be hex"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_json_mapping_is_read() {
        let body = json!({"resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
            "scopeLogs": [{"scope": {"name": "x"}, "logRecords": [{
                "timeUnixNano": "1800000000000000000", "severityNumber": 17, "severityText": "ERROR",
                "body": {"stringValue": "payment failed"},
                "attributes": [
                    {"key": "n", "value": {"intValue": "42"}},
                    {"key": "ok", "value": {"boolValue": false}},
                    {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}]}}}
                ],
                "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                "unknownField": 1
            }]}]
        }]});
        let req = request(&body).unwrap();
        let rec = &req.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(rec.time_unix_nano, 1_800_000_000_000_000_000);
        assert_eq!(rec.severity_number, 17);
        assert_eq!(
            rec.attributes[0].value,
            Some(AnyValue {
                value: Some(Any::Int(42))
            })
        );
        assert_eq!(rec.trace_id.len(), 16);
        assert_eq!(rec.span_id.len(), 8);
    }

    #[test]
    fn wrong_types_say_which_field() {
        let bad =
            json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": true}]}]}]});
        assert!(request(&bad).unwrap_err().contains("timeUnixNano"));
        let bad = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "xyz"}]}]}]});
        assert!(request(&bad).unwrap_err().contains("traceId"));
        assert!(request(&json!([1])).unwrap_err().contains("object"));
        assert_eq!(request(&json!({})).unwrap().resource_logs.len(), 0);
    }
}
