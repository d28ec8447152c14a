fn main() {
    println!("memlens: under construction");
}
