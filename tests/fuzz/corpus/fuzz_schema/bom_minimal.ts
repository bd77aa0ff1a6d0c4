import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
export default defineSchema({ t: defineTable({ x: v.string() }).index("by_x", ["x"]) })