use hub::{rpc_method, Fault};

#[derive(Debug)]
struct AppError;

impl From<AppError> for Fault {
    fn from(_: AppError) -> Fault {
        Fault::new(1000, "application error")
    }
}

// The attribute recognises a `Result` by its name: under another name the whole
// `Result` must be `Serialize`, and the error type is not.
type AppResult<T> = Result<T, AppError>;

#[rpc_method]
fn check() -> AppResult<bool> {
    Ok(true)
}

fn main() {}
