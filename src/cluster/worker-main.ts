// The entry point the cluster primary forks (cluster.setupPrimary's `exec`): one serving worker.
import { runWorker } from "./worker.ts";

runWorker();
