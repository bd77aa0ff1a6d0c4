/*
 * A small page on the official Convex React client (convex/react), driven
 * by tests/js/test_convex_react.mjs in headless Chromium against Herald.
 * It imports `api` from convex/_generated, which the test writes with
 * `herald codegen` beside this folder, so that `tsc --noEmit` checks every
 * call below against the app's validators.
 *
 * What the test reads: #progress (a job's progress, useQuery), #inc-result
 * and #clicks (useMutation and the query it moves), #auth (useConvexAuth)
 * and #whoami, #feed > li[data-id] and #feed-status (usePaginatedQuery).
 * window.heraldPage is how the test signs in and what it records.
 */
import { useCallback, useEffect, useMemo, useState, useSyncExternalStore } from "react";
import {
  ConvexProviderWithAuth,
  ConvexReactClient,
  useConvexAuth,
  useMutation,
  usePaginatedQuery,
  useQuery,
} from "convex/react";
import { api } from "../convex/_generated/api";

export interface PageHooks {
  /* Every distinct progress value the page rendered, in order. */
  progressSeen: number[];
  /* Every (isLoading, isAuthenticated) the page rendered, as "loading" / "yes" / "no". */
  authSeen: string[];
  /* Sets the token that ConvexProviderWithAuth hands to client.setAuth (null signs out). */
  signIn: (token: string | null) => void;
}

declare global {
  interface Window {
    heraldPage: PageHooks;
  }
}

/* The signed-in token, outside React so the test can set it; the auth hook reads it. */
let currentToken: string | null = null;
const tokenListeners = new Set<() => void>();
function subscribeToken(listener: () => void) {
  tokenListeners.add(listener);
  return () => {
    tokenListeners.delete(listener);
  };
}
window.heraldPage = {
  progressSeen: [],
  authSeen: [],
  signIn: (token) => {
    currentToken = token;
    tokenListeners.forEach((l) => l());
  },
};

/* The useAuth that ConvexProviderWithAuth wants: an auth provider with nothing but a token. */
function useTokenAuth() {
  const token = useSyncExternalStore(subscribeToken, () => currentToken);
  const fetchAccessToken = useCallback(
    async (_args: { forceRefreshToken: boolean }) => token,
    [token],
  );
  return useMemo(
    () => ({ isLoading: false, isAuthenticated: token !== null, fetchAccessToken }),
    [token, fetchAccessToken],
  );
}

function Job({ jobId }: { jobId: string }) {
  const job = useQuery(api.jobs.get, { jobId });
  const progress = job ? job.progress : undefined;
  useEffect(() => {
    const seen = window.heraldPage.progressSeen;
    if (progress !== undefined && seen[seen.length - 1] !== progress) seen.push(progress);
  }, [progress]);
  return <p id="progress">{job === undefined ? "loading" : job === null ? "no job" : String(job.progress)}</p>;
}

function Clicks() {
  const inc = useMutation(api.counters.inc);
  const count = useQuery(api.counters.get, { name: "clicks" });
  const [result, setResult] = useState("none");
  const onClick = () => {
    inc({ name: "clicks" }).then(
      (n) => setResult(String(n)),
      (e: Error) => setResult(`error: ${e.message}`),
    );
  };
  return (
    <p>
      <button id="inc" onClick={onClick}>+1</button> <span id="inc-result">{result}</span>{" "}
      <span id="clicks">{count === undefined ? "loading" : String(count)}</span>
    </p>
  );
}

function Auth() {
  const { isLoading, isAuthenticated } = useConvexAuth();
  const who = useQuery(api.counters.whoami, {});
  const state = isLoading ? "loading" : isAuthenticated ? "yes" : "no";
  useEffect(() => {
    const seen = window.heraldPage.authSeen;
    if (seen[seen.length - 1] !== state) seen.push(state);
  }, [state]);
  return (
    <p>
      <span id="auth">{state}</span> <span id="whoami">{who === undefined ? "loading" : String(who)}</span>
    </p>
  );
}

function Feed() {
  const { results, status, loadMore } = usePaginatedQuery(api.posts.feed, {}, { initialNumItems: 3 });
  return (
    <section>
      <ul id="feed">
        {results.map((post) => (
          <li key={post._id} data-id={post._id}>
            {post.text}
          </li>
        ))}
      </ul>
      <span id="feed-status">{status}</span>
      <button id="more" disabled={status !== "CanLoadMore"} onClick={() => loadMore(3)}>
        More
      </button>
    </section>
  );
}

export function App({ client, jobId }: { client: ConvexReactClient; jobId: string }) {
  return (
    <ConvexProviderWithAuth client={client} useAuth={useTokenAuth}>
      <Job jobId={jobId} />
      <Clicks />
      <Auth />
      <Feed />
    </ConvexProviderWithAuth>
  );
}
