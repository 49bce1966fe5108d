mod topk;
pub use topk::*;
