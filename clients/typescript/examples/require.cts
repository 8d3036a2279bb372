// CommonJS callers get the same API and types.
import pyexec = require("@pyexec/client");

const client: pyexec.PyexecClient = new pyexec.PyexecClient({ baseUrl: "http://127.0.0.1:3002" });
client
  .health()
  .then((h: pyexec.Health) => console.log(h.status))
  .catch((e: unknown) => console.error(e instanceof pyexec.PyexecError ? e.code : e));
