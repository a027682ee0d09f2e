use durable::durable;

#[durable]
async fn checkout(order: u32) -> durable::Result<u32> {
    Ok(order)
}

fn main() {
    let _ = checkout;
}
