import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

const timestamps = { createdAt: v.number(), updatedAt: v.number() };

export default defineSchema({
  posts: defineTable({
    text: v.string(),
    ...timestamps,
  }),
});
