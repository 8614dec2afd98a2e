import "./threadpool";
import "reflect-metadata";
import { main } from "./main";

// The GraphQL API alone (run `worker` separately; set REDIS_URL so both share events).
void main({ api: true, worker: false });
