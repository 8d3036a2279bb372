/**
 * An incremental parser of Server-Sent Events (the HTML standard's
 * "event stream interpretation"): feed it text as it arrives, in pieces of
 * any size; it calls onEvent for each event as soon as its blank line is in.
 */
export interface SseEvent {
  event: string;
  data: string;
  id: string | undefined;
}

export class SseParser {
  private buf = "";
  private sawCR = false;
  private event = "";
  private data: string[] = [];
  private hasData = false;
  private id: string | undefined;

  constructor(private readonly onEvent: (e: SseEvent) => void) {}

  /** Feed decoded text. */
  push(chunk: string): void {
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (c === 0x0a && this.sawCR) {
        // The LF of a CRLF whose CR ended the previous line.
        this.sawCR = false;
        start = i + 1;
        continue;
      }
      this.sawCR = false;
      if (c === 0x0a || c === 0x0d) {
        this.line(this.buf + chunk.slice(start, i));
        this.buf = "";
        this.sawCR = c === 0x0d;
        start = i + 1;
      }
    }
    this.buf += chunk.slice(start);
  }

  /** The stream ended: an event without its blank line is discarded, as the standard says. */
  end(): void {
    this.buf = "";
    this.reset();
  }

  private reset(): void {
    this.event = "";
    this.data = [];
    this.hasData = false;
  }

  private line(line: string): void {
    if (line === "") {
      if (this.hasData) this.onEvent({ event: this.event || "message", data: this.data.join("\n"), id: this.id });
      this.reset();
      return;
    }
    if (line.startsWith(":")) return; // a comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.event = value;
        break;
      case "data":
        this.data.push(value);
        this.hasData = true;
        break;
      case "id":
        if (!value.includes("\0")) this.id = value;
        break;
      default:
        break; // "retry" and unknown fields mean nothing to a one-shot stream
    }
  }
}
