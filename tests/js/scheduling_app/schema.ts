// An app whose mutations schedule runs: the Scheduled views of the admin
// consoles are tested with it (tests/js/test_admin.mjs, tests/console/test_console.py).
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
export default defineSchema({
  counters: defineTable({ name: v.string(), n: v.number() }).index("by_name", ["name"]),
});
