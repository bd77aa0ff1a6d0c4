#!/usr/bin/env node
/* every construct of the subset */
import { defineSchema, defineTable } from "convex/server";
import type { Foo } from "./foo";
import "side-effect";
import { v } from 'convex/values';

export const status = v.union(v.literal("a"), v.literal('b'), v.literal(`c`), v.literal(-2), v.literal(5n), v.literal(0x1F), v.literal(1_000.5e-3), v.literal(true), v.literal(null));
const fields = { name: v.string(), "quoted key": v.optional(v.number()), n: v.nullable(v.int64()), };
let big = v.bigint();
var tbl = defineTable(v.object({ a: v.float64(), b: big, c: v.bytes(), d: v.boolean(), e: v.null(), f: v.any(), g: v.array(v.id("users")), h: v.record(v.string(), v.any()), s: status, str: v.string() }))
  .index("by_a", ["a", "h.x"])
  .searchIndex("search_str", { searchField: "str", filterFields: ["a"] })
  .vectorIndex("vec_g", { vectorField: "g", dimensions: 0o10, filterFields: [], });

export default defineSchema({
  users: defineTable(fields),
  tbl,
  'other': (defineTable(v.union(v.object({ k: v.literal("x\u00e9\u{1F600}\x41\n") }), v.object({ k: v.literal(0b101) })))),
}, { schemaValidation: false, strictTableNameTypes: false });
