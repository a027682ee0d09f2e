//! Creates the DynamoDB table of the DynamoDB store: keys, the three indexes and time to
//! live (what `examples/dynamodb/template.yaml` declares for CloudFormation). An existing
//! table is left as it is.
//!
//! ```text
//! cargo run -p durable-examples --features dynamodb --bin dynamodb-setup -- TABLE
//! ```
//!
//! The table name may also come from `DURABLE_DYNAMODB_TABLE`. Region, credentials and
//! endpoint come from the usual AWS environment (`AWS_ENDPOINT_URL_DYNAMODB` points it at a
//! local stand-in such as `scripts/standins/dynamodb.sh`).

use durable::store::dynamodb::{DynamoOptions, DynamoStore};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let table = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("DURABLE_DYNAMODB_TABLE").ok())
        .ok_or("usage: dynamodb-setup TABLE (or set DURABLE_DYNAMODB_TABLE)")?;
    let store = DynamoStore::from_env(DynamoOptions::new(&table)).await;
    store.create_table().await?;
    println!("DynamoDB table {table} is ready (indexes by-function-status, by-status, due; time to live on ttl)");
    Ok(())
}
