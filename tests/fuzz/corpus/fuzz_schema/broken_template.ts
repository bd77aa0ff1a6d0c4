import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

const prefix = "app";
export default defineSchema({
  items: defineTable({
    kind: v.literal(`${prefix}`),
  }),
});
