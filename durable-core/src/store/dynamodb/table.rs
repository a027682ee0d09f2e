//! Creating the table: keys, indexes and time to live.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};

use super::error::{build_error, sdk_error};
use super::keys::{DP, FS, INDEX_BY_FUNCTION_STATUS, INDEX_BY_STATUS, INDEX_DUE, PK, SK, SS, TTL, WAKE};
use crate::store::{StoreError, StoreResult};

fn attribute(name: &str, t: ScalarAttributeType) -> StoreResult<AttributeDefinition> {
    AttributeDefinition::builder().attribute_name(name).attribute_type(t).build().map_err(build_error)
}

fn key(name: &str, t: KeyType) -> StoreResult<KeySchemaElement> {
    KeySchemaElement::builder().attribute_name(name).key_type(t).build().map_err(build_error)
}

fn index(name: &str, hash: &str, range: &str) -> StoreResult<GlobalSecondaryIndex> {
    // KEYS_ONLY: the index holds the keys, and a commit that rewrites the record without
    // changing them writes nothing to the index.
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash)?)
        .key_schema(key(range, KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
        .build()
        .map_err(build_error)
}

/// Creates the table a [`DynamoStore`](super::DynamoStore) uses, with its three indexes
/// (`by-function-status`, `by-status`, `due`), on-demand billing, and time to live on the
/// `ttl` attribute; waits until it is active. An existing table is left as it is (its time
/// to live is turned on if it is off). `examples/dynamodb/template.yaml` declares the same
/// table for CloudFormation.
pub async fn create_table(client: &Client, table: &str) -> StoreResult<()> {
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(PK, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(SK, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(FS, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(SS, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(DP, ScalarAttributeType::S)?)
        .attribute_definitions(attribute(WAKE, ScalarAttributeType::N)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(index(INDEX_BY_FUNCTION_STATUS, FS, PK)?)
        .global_secondary_indexes(index(INDEX_BY_STATUS, SS, PK)?)
        .global_secondary_indexes(index(INDEX_DUE, DP, WAKE)?)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(CreateTableError::is_resource_in_use_exception) => {}
        Err(e) => return Err(sdk_error("CreateTable", e)),
    }
    // A new table takes seconds to become active on DynamoDB (moto: at once).
    let mut delay = Duration::from_millis(100);
    let mut active = false;
    for _ in 0..150 {
        let described =
            client.describe_table().table_name(table).send().await.map_err(|e| sdk_error("DescribeTable", e))?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            active = true;
            break;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
    if !active {
        return Err(StoreError::backend(format!("table {table} did not become active within 5 minutes"), true));
    }
    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| sdk_error("DescribeTimeToLive", e))?;
    let status = ttl.time_to_live_description().and_then(|d| d.time_to_live_status());
    if !matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)) {
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder().enabled(true).attribute_name(TTL).build().map_err(build_error)?,
            )
            .send()
            .await
            .map_err(|e| sdk_error("UpdateTimeToLive", e))?;
    }
    Ok(())
}
