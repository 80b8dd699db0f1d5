// A port of Go's `path.Clean` and `path.Join` (slash-separated paths, no OS
// rules). containerd's typeurl builds every registered type URL with
// `path.Join`, so the same parts must give the same URL here. node:path is not
// a substitute: `posix.join()` returns "." and keeps trailing slashes.
//
// Go works on bytes; only '/' and '.' are special and both are ASCII, so
// working on UTF-16 code units gives the same result.

/**
 * Returns the shortest path equivalent to `path`, exactly as Go's
 * `path.Clean`: repeated slashes collapse, `.` elements go, `..` elements
 * remove the element before them (and are dropped at the root), a trailing
 * slash goes, and an empty result is ".".
 */
export function pathClean(path: string): string {
  if (path === "") return ".";
  const rooted = path[0] === "/";
  const n = path.length;
  // out[0..w) is the result so far; `dotdot` is where `..` can no longer
  // backtrack (after the root or after leading `..` elements).
  const out: string[] = [];
  let w = 0;
  const append = (c: string) => {
    out[w++] = c;
  };
  let r = 0;
  let dotdot = 0;
  if (rooted) {
    append("/");
    r = 1;
    dotdot = 1;
  }
  while (r < n) {
    if (path[r] === "/") {
      r++;
    } else if (path[r] === "." && (r + 1 === n || path[r + 1] === "/")) {
      r++;
    } else if (path[r] === "." && path[r + 1] === "." && (r + 2 === n || path[r + 2] === "/")) {
      r += 2;
      if (w > dotdot) {
        w--;
        while (w > dotdot && out[w] !== "/") w--;
      } else if (!rooted) {
        if (w > 0) append("/");
        append(".");
        append(".");
        dotdot = w;
      }
    } else {
      if ((rooted && w !== 1) || (!rooted && w !== 0)) append("/");
      for (; r < n && path[r] !== "/"; r++) append(path[r]!);
    }
  }
  if (w === 0) return ".";
  return out.slice(0, w).join("");
}

/**
 * Joins path elements with slashes and cleans the result, exactly as Go's
 * `path.Join`: empty elements are ignored, and if every element is empty the
 * result is "" (not ".").
 */
export function pathJoin(...elements: readonly string[]): string {
  const nonEmpty = elements.filter((e) => e !== "");
  if (nonEmpty.length === 0) return "";
  return pathClean(nonEmpty.join("/"));
}
