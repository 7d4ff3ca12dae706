/**
 * The route table: exact paths first (a map lookup), then prefixes, longest first; the first route whose method
 * matches wins. Built once from the route modules; matching allocates nothing.
 */
import type { Route } from "./types.js";

export class RouteTable {
  private readonly exact = new Map<string, Route[]>();
  private readonly prefixes: Route[] = [];

  constructor(routes: readonly Route[]) {
    for (const r of routes) {
      if (r.prefix) this.prefixes.push(r);
      else {
        let list = this.exact.get(r.path);
        if (!list) this.exact.set(r.path, (list = []));
        list.push(r);
      }
    }
    // stable: among prefixes of the same length, the earlier module wins
    this.prefixes.sort((a, b) => b.path.length - a.path.length);
  }

  match(method: string, path: string): Route | undefined {
    const list = this.exact.get(path);
    if (list) {
      for (const r of list) if (r.method === method || r.method === "*") return r;
    }
    for (const r of this.prefixes) {
      if ((r.method === method || r.method === "*") && path.startsWith(r.path)) return r;
    }
    return undefined;
  }
}
