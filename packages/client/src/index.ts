export {
  type BoundTask,
  type ClientOptions,
  createClient,
  JobbersClient,
  type ListOptions,
  type QueueSummary,
  type ResultOptions,
  type RetryIncidentsOptions,
  type SubmitOptions,
  type Submitted,
  type WorkflowNodeInput,
  type WorkflowSubmitted,
} from './client.js';
export { JobbersApiError, JobbersTimeoutError, TaskFailedError } from './errors.js';
export { type ParamsOf, type ResultOf, type TaskLike, type TaskRef, taskRef } from './task-ref.js';
