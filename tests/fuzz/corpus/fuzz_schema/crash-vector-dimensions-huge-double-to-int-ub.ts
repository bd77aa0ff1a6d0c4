export default defineSchema({ t: defineTable(v.any()).vectorIndex("v", { vectorField: "e", dimensions: 1e18 }) })
