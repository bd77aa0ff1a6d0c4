/*
 * The page's entry: ?convex=<Herald's http URL>&job=<job id>.
 */
import { createRoot } from "react-dom/client";
import { ConvexReactClient } from "convex/react";
import { App } from "./App";

const params = new URLSearchParams(window.location.search);
const url = params.get("convex");
if (!url) throw new Error("the page needs ?convex=<Herald's URL>");
const client = new ConvexReactClient(url, { unsavedChangesWarning: false });
const root = document.getElementById("root");
if (!root) throw new Error("no #root");
createRoot(root).render(<App client={client} jobId={params.get("job") ?? "job-1"} />);
