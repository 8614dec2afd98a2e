import "./threadpool";
import "reflect-metadata";
import { main } from "./main";

// The Temporal worker alone.
void main({ api: false, worker: true });
