use durable::durable;

#[durable]
struct Checkout;

fn main() {
    let _ = Checkout;
}
