//! Tasks: faults with their own codes, `RpcError` results, floats and arrays.

use hub::{rpc_method, Fault, RpcError};

/// A failure of a task, with koji's BuildError code.
#[derive(Debug)]
pub enum TaskError {
    Failed(i64),
}

impl From<TaskError> for Fault {
    fn from(error: TaskError) -> Fault {
        match error {
            TaskError::Failed(id) => Fault::new(1005, format!("task {id} failed")),
        }
    }
}

/// The result of a finished task.
#[rpc_method(name = "getTaskResult")]
pub fn get_task_result(task_id: i64) -> Result<String, TaskError> {
    if task_id % 2 == 0 {
        Ok(format!("task {task_id} ok"))
    } else {
        Err(TaskError::Failed(task_id))
    }
}

/// Refuses odd numbers itself, as an invalid-params error.
#[rpc_method(name = "evenOnly")]
pub fn even_only(value: i64) -> Result<i64, RpcError> {
    if value % 2 == 0 {
        Ok(value / 2)
    } else {
        Err(RpcError::InvalidParams(format!("{value} is odd")))
    }
}

/// Adds numbers up.
#[rpc_method]
pub async fn sum(values: Vec<f64>) -> f64 {
    values.iter().sum()
}
