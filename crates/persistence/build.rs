// diesel's embed_migrations! reads ../../migrations at compile time; without this, cargo
// would not notice a new migration directory and the binary would miss it.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
