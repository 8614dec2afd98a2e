export * from "./types";
export * from "./signatures";
export { ocrPng, OcrUnavailableError } from "./ocr";
export { probeService, type ServiceProbeResult } from "./service-probe";
export { collectBootEvidence, failureReason, provesBoot, BootCheckAbortedError } from "./collect";
