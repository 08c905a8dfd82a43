//! Properties of the decoders, checked on generated input with shrinking (proptest): the
//! pgoutput decoder and a replication session never panic on arbitrary bytes, pgoutput
//! messages decode to what was encoded, and array literals, as Postgres prints them, parse back
//! to the array printed. The long runs are the cargo-fuzz targets in `fuzz/`.

use august_cdc::fuzzing;
use august_cdc::pgoutput::{decode, Datum, Message};
use august_cdc::Value;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// A valid server opening: authentication OK, ready, one command answered, streaming.
const SERVER_OPENING: &[u8] =
    &[b'R', 0, 0, 0, 8, 0, 0, 0, 0, b'Z', 0, 0, 0, 5, b'I', b'Z', 0, 0, 0, 5, b'I', b'W', 0, 0, 0, 4];

/// Text with the characters array literals treat specially, and others.
fn element_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9 ,{}\"\\\\\t\n\r\u{0b}\u{0c}\u{a0}\u{2003}é'=\\[\\]:]{0,8}",
        Just("NULL".to_string()),
        Just("null".to_string()),
        Just(" NULL ".to_string()),
        Just(String::new()),
    ]
}

/// An element as `array_out` writes it: quoted when empty, `NULL`-like, or holding a quote,
/// backslash, brace, comma or ASCII whitespace; quotes and backslashes escaped inside.
fn array_out_element(text: &str) -> String {
    let special = |c: char| matches!(c, '"' | '\\' | '{' | '}' | ',' | ' ' | '\t' | '\n' | '\r' | '\u{0b}' | '\u{0c}');
    if text.is_empty() || text.eq_ignore_ascii_case("NULL") || text.chars().any(special) {
        format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        text.to_string()
    }
}

fn array_out(items: &[Option<String>]) -> String {
    let items: Vec<String> = items.iter().map(|i| i.as_deref().map_or("NULL".to_string(), array_out_element)).collect();
    format!("{{{}}}", items.join(","))
}

fn text_array(items: &[Option<String>]) -> Value {
    Value::Array(items.iter().map(|i| i.clone().map_or(Value::Null, Value::Text)).collect())
}

/// A pgoutput tuple's bytes.
fn encode_tuple(out: &mut Vec<u8>, datums: &[Option<Option<String>>]) {
    out.extend_from_slice(&(datums.len() as i16).to_be_bytes());
    for datum in datums {
        match datum {
            None => out.push(b'u'),
            Some(None) => out.push(b'n'),
            Some(Some(text)) => {
                out.push(b't');
                out.extend_from_slice(&(text.len() as i32).to_be_bytes());
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
}

proptest! {
    #[test]
    fn the_pgoutput_decoder_never_panics_on_arbitrary_bytes(
        tag in prop::sample::select(b"BCRIUDTMOYX".to_vec()),
        rest in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut data = vec![tag];
        data.extend(rest);
        fuzzing::pgoutput_message(&data);
        fuzzing::pgoutput_message(&data[1..]);
    }

    #[test]
    fn a_replication_session_never_panics_on_arbitrary_server_bytes(
        opening in 0..=SERVER_OPENING.len(),
        rest in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut server = SERVER_OPENING[..opening].to_vec();
        server.extend(rest);
        fuzzing::walsender_session(&server);
    }

    #[test]
    fn value_decoding_never_panics_on_arbitrary_text(data in prop::collection::vec(any::<u8>(), 0..200)) {
        fuzzing::value_bytes(&data);
    }

    #[test]
    fn an_insert_decodes_to_the_tuple_encoded(
        relation in any::<u32>(),
        datums in prop::collection::vec(prop::option::of(prop::option::of(".{0,20}")), 0..20),
    ) {
        let mut data = vec![b'I'];
        data.extend_from_slice(&relation.to_be_bytes());
        data.push(b'N');
        encode_tuple(&mut data, &datums);
        let expected: Vec<Datum<'_>> = datums
            .iter()
            .map(|d| match d {
                None => Datum::UnchangedToast,
                Some(None) => Datum::Null,
                Some(Some(text)) => Datum::Text(text),
            })
            .collect();
        prop_assert_eq!(decode(&data).unwrap(), Message::Insert { relation, new: expected });
        // Cut anywhere short of the end, the message is an error.
        for cut in 0..data.len() {
            prop_assert!(decode(&data[..cut]).is_err(), "cut at {}", cut);
        }
    }

    #[test]
    fn a_text_array_as_postgres_prints_it_parses_back(
        items in prop::collection::vec(prop::option::of(element_text()), 0..8),
    ) {
        prop_assert_eq!(Value::decode(1009, &array_out(&items)), text_array(&items));
    }

    #[test]
    fn a_two_dimensional_array_parses_back(
        rows in (1usize..4).prop_flat_map(|width| {
            prop::collection::vec(prop::collection::vec(prop::option::of(any::<i64>()), width), 1..4)
        }),
    ) {
        let text = format!(
            "{{{}}}",
            rows.iter()
                .map(|row| {
                    let items: Vec<String> = row.iter().map(|i| i.map_or("NULL".into(), |i| i.to_string())).collect();
                    format!("{{{}}}", items.join(","))
                })
                .collect::<Vec<_>>()
                .join(",")
        );
        let expected = Value::Array(
            rows.iter()
                .map(|row| Value::Array(row.iter().map(|i| i.map_or(Value::Null, Value::Int)).collect()))
                .collect(),
        );
        prop_assert_eq!(Value::decode(1016, &text), expected);
    }
}

/// The same property against the real `array_out`: each generated array goes to Postgres as a
/// `text[]` parameter, and the text Postgres prints for it decodes to the array sent.
#[tokio::test]
async fn text_arrays_postgres_prints_decode_to_the_arrays_sent() {
    let db = august_testkit::fresh_db("cdc_array_props").await;
    let client = db.client().await;
    let statement = client.prepare("SELECT $1::text[]::text").await.unwrap();
    let strategy = prop::collection::vec(prop::option::of(element_text()), 0..8);
    let mut runner = TestRunner::deterministic();
    for _ in 0..300 {
        let items = strategy.new_tree(&mut runner).unwrap().current();
        let printed: String = client.query_one(&statement, &[&items]).await.unwrap().get(0);
        assert_eq!(printed, array_out(&items), "the model of array_out is Postgres' own");
        assert_eq!(Value::decode(1009, &printed), text_array(&items), "{printed}");
    }
}

/// JSON documents inside a `jsonb[]`, which Postgres prints quoted and escaped, decode to the
/// documents sent.
#[tokio::test]
async fn jsonb_arrays_postgres_prints_decode_to_the_documents_sent() {
    let db = august_testkit::fresh_db("cdc_jsonb_props").await;
    let client = db.client().await;
    let statement = client.prepare("SELECT $1::text[]::jsonb[]::text").await.unwrap();
    let leaf = prop_oneof![
        any::<i32>().prop_map(serde_json::Value::from),
        "[a-z \"\\\\,{}é]{0,6}".prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ];
    let document = leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z\"]{1,3}", inner, 0..3)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    let strategy = prop::collection::vec(document, 0..5);
    let mut runner = TestRunner::deterministic();
    for _ in 0..200 {
        let documents = strategy.new_tree(&mut runner).unwrap().current();
        let texts: Vec<String> = documents.iter().map(|d| d.to_string()).collect();
        let printed: String = client.query_one(&statement, &[&texts]).await.unwrap().get(0);
        let Value::Array(items) = Value::decode(3807, &printed) else { panic!("not an array: {printed}") };
        let decoded: Vec<serde_json::Value> = items.iter().map(Value::to_json).collect();
        assert_eq!(decoded, documents, "{printed}");
    }
}
