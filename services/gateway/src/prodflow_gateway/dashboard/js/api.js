// The gateway's API: bearer token, JSON, problem+json errors turned into ApiError.

const KEY = "prodflow.token";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problemLine(status, problem));
    this.status = status;
    this.problem = problem;
  }
}

/** One clear line for a problem: "422 Validation failed: label: ...; contacts.0: ...". */
export function problemLine(status, problem) {
  const detail = problem?.detail || "";
  const fields = (problem?.errors || [])
    .map((e) => `${e.field}: ${e.message}`)
    .filter((text) => !detail.includes(text));
  const text = [detail, ...fields].filter(Boolean).join("; ");
  return `${status} ${problem?.title || "Error"}${text ? `: ${text}` : ""}`;
}

export const token = {
  get() {
    return sessionStorage.getItem(KEY) || localStorage.getItem(KEY);
  },
  set(value, remember) {
    this.clear();
    (remember ? localStorage : sessionStorage).setItem(KEY, value);
  },
  clear() {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
  },
};

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === null || value === undefined || value === "") continue;
    search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** Call the gateway; resolves to the decoded JSON (or text), rejects with ApiError. */
export async function call(method, path, { params, body, secret, accept } = {}) {
  const headers = { Accept: accept || "application/json, application/problem+json" };
  const bearer = secret ?? token.get();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path + query(params), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, { title: "Gateway unreachable", detail: String(error) });
  }
  const type = response.headers.get("content-type") || "";
  const payload = type.includes("json") ? await response.json().catch(() => null) : await response.text();
  if (!response.ok) {
    const problem = payload && typeof payload === "object" ? payload : { title: response.statusText, detail: payload };
    if (response.status === 401) window.dispatchEvent(new CustomEvent("prodflow:unauthenticated"));
    throw new ApiError(response.status, problem);
  }
  return payload;
}

export const api = {
  get: (path, params) => call("GET", path, { params }),
  text: (path, params) => call("GET", path, { params, accept: "text/plain, application/json" }),
  post: (path, body = {}, params) => call("POST", path, { body, params }),
  patch: (path, body) => call("PATCH", path, { body }),
  put: (path, body) => call("PUT", path, { body }),
  del: (path) => call("DELETE", path),
};

/** A path segment from user data. */
export const seg = (value) => encodeURIComponent(String(value));
