export * from "./types";
export * from "./signatures";
export { ocrImage, OcrUnavailableError } from "./ocr";
export { probeService, type ServiceProbeResult } from "./service-probe";
export { collectBootEvidence, failureReason, provesBoot, BootCheckAbortedError } from "./collect";
