import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

import { makeTable } from "./helpers";

export default defineSchema({
  users: makeTable("users"),
});
