/**
 * The client's types against docs/openapi.json (generated/openapi.d.ts, made
 * by `npm run generate`): compiled by `tsc -p tsconfig.check.json`, which
 * fails when a field is renamed, added or dropped on either side, or when a
 * document the service sends does not fit the client's type.
 */
import type { components } from "../generated/openapi.js";
import type * as T from "../src/types.js";

type S = components["schemas"];

/** Resolves to true only when A and B have exactly the same keys. */
type SameKeys<A, B> = [Exclude<keyof A, keyof B>, Exclude<keyof B, keyof A>] extends [never, never] ? true : false;
/** Resolves to true only when A is assignable to B. */
type Fits<A, B> = [A] extends [B] ? true : false;
/** Fails to compile unless its argument is true. */
type Assert<X extends true> = X;
/** The keys an allOf-with-false schema forbids (typed `never`) are not fields. */
type Real<A> = { [K in keyof A as [A[K]] extends [undefined] ? never : K]: A[K] };

export type Checks = [
  // What the client sends: the same fields, and what it sends the service accepts.
  Assert<SameKeys<T.ExecuteRequest, S["ExecuteRequest"]>>,
  Assert<Fits<Omit<T.ExecuteRequest, "policy" | "files" | "tests">, Omit<S["ExecuteRequest"], "policy" | "files" | "tests">>>,
  Assert<SameKeys<T.SubmissionRequest, S["SubmissionRequest"]>>,
  Assert<Fits<Omit<T.SubmissionRequest, "policy" | "files" | "tests">, Omit<S["SubmissionRequest"], "policy" | "files" | "tests">>>,
  Assert<SameKeys<T.SandboxFile, S["File"]>>,
  Assert<Fits<T.SandboxFile, S["File"]>>,
  Assert<SameKeys<T.TestCase, S["TestCase"]>>,
  Assert<Fits<T.TestCase, S["TestCase"]>>,
  Assert<Fits<S["ExecuteRequest"]["policy"], T.PolicyName | undefined>>,
  // What the service answers: the same fields, and every answer fits the client's type.
  Assert<SameKeys<T.Result, S["Result"]>>,
  Assert<Fits<S["Result"], T.Result>>,
  Assert<SameKeys<T.ExecuteResult, Real<S["ExecuteResult"]>>>,
  Assert<Fits<S["ExecuteResult"], T.ExecuteResult>>,
  Assert<SameKeys<T.JobResult, Real<S["JobResult"]>>>,
  // The schema's allOf makes job and outputs required, which the generated type leaves optional.
  Assert<Fits<S["JobResult"] & Required<Pick<S["Result"], "job" | "outputs">>, T.JobResult>>,
  Assert<Fits<S["Status"], T.Status>>,
  Assert<Fits<T.Status, S["Status"]>>,
  Assert<SameKeys<T.Limits, S["Limits"]>>,
  Assert<Fits<S["Limits"], T.Limits>>,
  Assert<SameKeys<T.ResultImage, S["Image"]>>,
  Assert<Fits<S["Image"], T.ResultImage>>,
  Assert<SameKeys<T.TestResult, S["TestResult"]>>,
  Assert<Fits<S["TestResult"], T.TestResult>>,
  Assert<SameKeys<T.Difference, S["Difference"]>>,
  Assert<SameKeys<T.TestSummary, S["Summary"]>>,
  Assert<Fits<S["Summary"], T.TestSummary>>,
  Assert<SameKeys<T.JobOutput, S["JobOutput"]>>,
  Assert<Fits<S["JobOutput"], T.JobOutput>>,
  Assert<SameKeys<T.ErrorBody, S["Error"]>>,
  Assert<SameKeys<T.ErrorBody["error"], S["ErrorBody"]>>,
  Assert<Fits<S["Error"], T.ErrorBody>>,
  Assert<Fits<T.ErrorCode, S["ErrorBody"]["code"]>>,
  Assert<SameKeys<T.Submission, S["Submission"]>>,
  Assert<Fits<S["Submission"], T.Submission>>,
  Assert<Fits<S["SubmissionState"], T.SubmissionState>>,
  Assert<SameKeys<T.Health, S["Health"]>>,
  Assert<Fits<S["Health"], T.Health>>,
  Assert<SameKeys<T.Ready, S["Ready"]>>,
  Assert<Fits<S["Ready"], T.Ready>>,
  Assert<SameKeys<T.JobParam, S["JobParam"]>>,
  Assert<Fits<S["JobParam"], T.JobParam>>,
  Assert<SameKeys<T.Job, S["Jobs"]["jobs"][number]>>,
  Assert<Fits<S["Jobs"]["jobs"][number], T.Job>>,
  Assert<Fits<S["JobRequest"]["params"], T.JobParams>>,
  Assert<Fits<S["Environment"], T.Environment>>,
  Assert<SameKeys<T.WebhookEvent, S["WebhookEvent"]>>,
  Assert<Fits<S["WebhookEvent"], T.WebhookEvent>>,
];
