// JSON schemas of the request bodies: Fastify validates every body against these before a
// handler runs, so handlers see well-typed values and clients get a 400 naming the field.

const model = { type: "string", minLength: 1, maxLength: 256 } as const;
const texts = { anyOf: [{ type: "string" }, { type: "array", items: { type: "string" }, minItems: 1, maxItems: 256 }] } as const;

export const loadAdapter = {
  type: "object",
  required: ["lora_name", "lora_path"],
  additionalProperties: false,
  properties: { lora_name: { type: "string", minLength: 1, maxLength: 128 }, lora_path: { type: "string", minLength: 1, maxLength: 4096 }, load_inplace: { type: "boolean" } },
} as const;

export const unloadAdapter = {
  type: "object",
  required: ["lora_name"],
  additionalProperties: false,
  properties: { lora_name: { type: "string", minLength: 1, maxLength: 128 }, lora_int_id: { type: "integer" } },
} as const;

export const classify = { type: "object", required: ["model", "input"], properties: { model, input: texts } } as const;

const qaRecord = { type: "object", required: ["question", "context"], properties: { question: { type: "string" }, context: { type: "string" } } } as const;
export const questionAnswering = { type: "object", required: ["model", "input"], properties: { model, input: { anyOf: [qaRecord, { type: "array", items: qaRecord, minItems: 1, maxItems: 64 }] } } } as const;

export const embeddings = { type: "object", required: ["model", "input"], properties: { model, input: texts, encoding_format: { enum: ["float", "base64"] } } } as const;

const samplingFields = {
  model,
  max_tokens: { type: ["integer", "null"], minimum: 1, maximum: 4096 },
  max_completion_tokens: { type: ["integer", "null"], minimum: 1, maximum: 4096 },
  temperature: { type: ["number", "null"], minimum: 0, maximum: 2 },
  top_p: { type: ["number", "null"], exclusiveMinimum: 0, maximum: 1 },
  stop: { anyOf: [{ type: "string" }, { type: "array", items: { type: "string", minLength: 1 }, maxItems: 4 }, { type: "null" }] },
  seed: { type: ["integer", "null"] },
  n: { type: ["integer", "null"], minimum: 1, maximum: 8 },
  stream: { type: ["boolean", "null"] },
  stream_options: { type: ["object", "null"], properties: { include_usage: { type: "boolean" } } },
} as const;

export const completions = {
  type: "object",
  required: ["model", "prompt"],
  properties: { ...samplingFields, prompt: { anyOf: [{ type: "string" }, { type: "array", items: { type: "string" }, minItems: 1, maxItems: 16 }] } },
} as const;

export const chat = {
  type: "object",
  required: ["model", "messages"],
  properties: {
    ...samplingFields,
    messages: { type: "array", minItems: 1, maxItems: 256, items: { type: "object", required: ["role", "content"], properties: { role: { enum: ["system", "user", "assistant"] }, content: { type: "string" } } } },
  },
} as const;
