/* JSON for the Test page, hand-written, no dependency: window.podtaskJson.

   - parse(text): {ok: true, value} or {ok: false, error: {message, offset, line, column}}.
     A strict JSON parser (RFC 8259) whose errors say where (line and column, from 1) and
     what was expected, in the same words in every browser (JSON.parse's differ).
   - validate(schema, value): [{path, message, wrongType}], the places where `value` breaks `schema`,
     by JSON path ("$.items[2].qty"). The subset of JSON Schema that pydantic emits: type,
     enum, const, properties, required, additionalProperties, patternProperties,
     items/prefixItems, min/maxItems, uniqueItems, minimum/maximum (and exclusive),
     multipleOf, min/maxLength, pattern, min/maxProperties, $ref into $defs/definitions,
     anyOf/oneOf/allOf/not (nullable fields are anyOf with {type: "null"}).
   - example(schema): a value that fits `schema` as far as it can tell: the schema's own
     examples or defaults first, else one made from the types and bounds. */
(function () {
  "use strict";

  // -- parsing -----------------------------------------------------------------------------

  class JsonSyntaxError extends Error {
    constructor(message, offset) {
      super(message);
      this.offset = offset;
    }
  }

  const WHITESPACE = new Set([" ", "\t", "\n", "\r"]);
  const ESCAPES = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
  const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const MAX_DEPTH = 512;

  function describe(char) {
    if (char === undefined) return "the end of the text";
    if (char === "\n") return "a line break";
    if (char === "\t") return "a tab";
    if (char === "'") return "' (JSON strings take double quotes)";
    return "'" + char + "'";
  }

  function parser(text) {
    let at = 0;

    function fail(message, offset) {
      throw new JsonSyntaxError(message, offset === undefined ? at : offset);
    }

    function skip() {
      while (at < text.length && WHITESPACE.has(text[at])) at++;
    }

    function literal(word, value) {
      if (text.startsWith(word, at)) {
        at += word.length;
        return value;
      }
      return unexpected();
    }

    function unexpected() {
      let end = at;
      while (end < text.length && /[A-Za-z0-9_]/.test(text[end])) end++;
      const found = text.slice(at, end) || text[at];
      if (found === "True" || found === "False" || found === "None") {
        fail("Unexpected " + found + ": JSON writes " +
          { True: "true", False: "false", None: "null" }[found]);
      }
      fail("Unexpected '" + found + "': expected a JSON value");
    }

    function string() {
      const start = at;
      at++; // the opening quote
      let out = "";
      while (true) {
        if (at >= text.length) fail("Unterminated string: it needs a closing '\"'", start);
        const char = text[at];
        if (char === '"') {
          at++;
          return out;
        }
        if (char === "\\") {
          const next = text[at + 1];
          if (next === "u") {
            const hex = text.slice(at + 2, at + 6);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("Bad \\u escape: it takes 4 hex digits");
            out += String.fromCharCode(parseInt(hex, 16));
            at += 6;
          } else if (next !== undefined && Object.prototype.hasOwnProperty.call(ESCAPES, next)) {
            out += ESCAPES[next];
            at += 2;
          } else {
            fail("Bad escape \\" + (next === undefined ? "" : next) + " in a string");
          }
          continue;
        }
        if (char < " ") {
          fail(char === "\n"
            ? "Unterminated string: a line break inside a string is written \\n"
            : "A control character inside a string must be escaped");
        }
        out += char;
        at++;
      }
    }

    function number() {
      NUMBER.lastIndex = at;
      const match = NUMBER.exec(text);
      if (!match) fail("Bad number: expected a digit after " + describe(text[at]));
      const end = at + match[0].length;
      if (end < text.length && /[0-9.eE+\-]/.test(text[end])) {
        fail(text[at] === "0" || text.slice(at, at + 2) === "-0"
          ? "Bad number: no leading zeros"
          : "Bad number", end);
      }
      at = end;
      return Number(match[0]);
    }

    function value(depth) {
      if (depth > MAX_DEPTH) fail("Too deeply nested");
      skip();
      const char = text[at];
      if (char === "{") return object(depth);
      if (char === "[") return array(depth);
      if (char === '"') return string();
      if (char === "-" || (char >= "0" && char <= "9")) return number();
      if (char === "t") return literal("true", true);
      if (char === "f") return literal("false", false);
      if (char === "n") return literal("null", null);
      if (char === undefined) fail("Unexpected end of the text: expected a JSON value");
      if (char === "'") fail("Unexpected ': JSON strings take double quotes");
      if (char === "}" || char === "]") fail("Unexpected '" + char + "': expected a value");
      return unexpected();
    }

    function object(depth) {
      const result = {};
      at++; // {
      skip();
      if (text[at] === "}") {
        at++;
        return result;
      }
      while (true) {
        skip();
        if (text[at] !== '"') {
          if (text[at] === "}") fail("Trailing comma before '}'");
          fail("Expected a property name in double quotes, found " + describe(text[at]));
        }
        const key = string();
        skip();
        if (text[at] !== ":") fail("Expected ':' after the property name, found " + describe(text[at]));
        at++;
        result[key] = value(depth + 1);
        skip();
        if (text[at] === ",") {
          at++;
          continue;
        }
        if (text[at] === "}") {
          at++;
          return result;
        }
        fail("Expected ',' or '}' after a property value, found " + describe(text[at]));
      }
    }

    function array(depth) {
      const result = [];
      at++; // [
      skip();
      if (text[at] === "]") {
        at++;
        return result;
      }
      while (true) {
        skip();
        if (text[at] === "]") fail("Trailing comma before ']'");
        result.push(value(depth + 1));
        skip();
        if (text[at] === ",") {
          at++;
          continue;
        }
        if (text[at] === "]") {
          at++;
          return result;
        }
        fail("Expected ',' or ']' after an array item, found " + describe(text[at]));
      }
    }

    return function () {
      skip();
      if (at >= text.length) fail("Empty: enter a JSON value, for example {} or null");
      const result = value(0);
      skip();
      if (at < text.length) fail("Unexpected " + describe(text[at]) + " after the JSON value");
      return result;
    };
  }

  function position(text, offset) {
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < offset && i < text.length; i++) {
      if (text[i] === "\n") {
        line++;
        lineStart = i + 1;
      }
    }
    return { line: line, column: offset - lineStart + 1 };
  }

  function parse(text) {
    try {
      return { ok: true, value: parser(text)() };
    } catch (error) {
      if (!(error instanceof JsonSyntaxError)) throw error;
      const where = position(text, error.offset);
      return {
        ok: false,
        error: { message: error.message, offset: error.offset, line: where.line, column: where.column },
      };
    }
  }

  // -- validating --------------------------------------------------------------------------

  function typeOf(value) {
    if (value === null) return "null";
    if (Array.isArray(value)) return "array";
    if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
    return typeof value; // string, boolean, object
  }

  function hasType(value, type) {
    const actual = typeOf(value);
    if (type === "number") return actual === "number" || actual === "integer";
    return actual === type;
  }

  const TYPE_WORDS = {
    object: "an object",
    array: "an array",
    string: "a string",
    integer: "an integer",
    number: "a number",
    boolean: "true or false",
    null: "null",
  };

  function typeWords(types) {
    return types.map(function (type) {
      return TYPE_WORDS[type] || type;
    }).join(" or ");
  }

  function shown(value) {
    const text = JSON.stringify(value);
    return text.length > 40 ? text.slice(0, 37) + "…" : text;
  }

  function childPath(path, key) {
    if (typeof key === "number") return path + "[" + key + "]";
    return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? path + "." + key : path + "[" + JSON.stringify(key) + "]";
  }

  function equal(a, b) {
    if (a === b) return true;
    if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
    if (Array.isArray(a) !== Array.isArray(b)) return false;
    const keysA = Object.keys(a);
    const keysB = Object.keys(b);
    if (keysA.length !== keysB.length) return false;
    return keysA.every(function (key) {
      return Object.prototype.hasOwnProperty.call(b, key) && equal(a[key], b[key]);
    });
  }

  function resolve(root, ref) {
    // Only references into the same document: "#", "#/$defs/Name", "#/definitions/Name".
    if (typeof ref !== "string" || !ref.startsWith("#")) return null;
    let node = root;
    for (const raw of ref.slice(1).split("/").slice(1)) {
      const part = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
      if (node === null || typeof node !== "object" || !(part in node)) return null;
      node = node[part];
    }
    return node;
  }

  function length(text) {
    return Array.from(text).length; // code points, as JSON Schema counts
  }

  function plural(count, word) {
    return count + " " + word + (count === 1 ? "" : "s");
  }

  function regex(pattern) {
    try {
      return new RegExp(pattern, "u");
    } catch (_) {
      try {
        return new RegExp(pattern);
      } catch (_ignored) {
        return null; // a Python-only construct: not checked here (the task checks it)
      }
    }
  }

  function validator(root) {
    const MAX_REFS = 64;

    function check(schema, value, path, errors, refs) {
      if (schema === true || schema === undefined || schema === null) return;
      if (schema === false) {
        errors.push({ path: path, message: "is not allowed here" });
        return;
      }
      if (schema.$ref !== undefined) {
        const target = resolve(root, schema.$ref);
        if (target !== null && refs < MAX_REFS) check(target, value, path, errors, refs + 1);
      }
      if (schema.type !== undefined) {
        const types = Array.isArray(schema.type) ? schema.type : [schema.type];
        if (!types.some(function (type) { return hasType(value, type); })) {
          errors.push({
            path: path,
            message: "must be " + typeWords(types) + ", not " + shown(value),
            wrongType: true,
          });
          return;
        }
      }
      if (schema.const !== undefined && !equal(value, schema.const)) {
        errors.push({ path: path, message: "must be " + shown(schema.const) });
      }
      if (Array.isArray(schema.enum) && !schema.enum.some(function (item) { return equal(item, value); })) {
        errors.push({
          path: path,
          message: "must be one of " + schema.enum.map(shown).join(", ") + ", not " + shown(value),
        });
      }
      combinators(schema, value, path, errors, refs);
      if (typeof value === "string") strings(schema, value, path, errors);
      else if (typeof value === "number") numbers(schema, value, path, errors);
      else if (Array.isArray(value)) arrays(schema, value, path, errors, refs);
      else if (value !== null && typeof value === "object") objects(schema, value, path, errors, refs);
    }

    function combinators(schema, value, path, errors, refs) {
      if (Array.isArray(schema.allOf)) {
        for (const part of schema.allOf) check(part, value, path, errors, refs);
      }
      for (const keyword of ["anyOf", "oneOf"]) {
        const variants = schema[keyword];
        if (!Array.isArray(variants)) continue;
        const outcomes = variants.map(function (variant) {
          const found = [];
          check(variant, value, path, found, refs);
          return found;
        });
        const passing = outcomes.filter(function (found) { return found.length === 0; }).length;
        if (keyword === "oneOf" && passing > 1) {
          errors.push({ path: path, message: "matches more than one of the allowed shapes" });
        }
        if (passing > 0) continue;
        // The variant whose type fits (its errors lie deeper, or are not about the type)
        // says best what to fix; else, say which types would do.
        const fitting = outcomes.filter(function (found) {
          return !found.some(function (error) {
            return error.path === path && error.wrongType;
          });
        });
        if (fitting.length > 0) {
          fitting.sort(function (a, b) { return a.length - b.length; });
          errors.push.apply(errors, fitting[0]);
        } else {
          const types = [];
          for (const variant of variants) {
            const target = variant && variant.$ref ? resolve(root, variant.$ref) : variant;
            const type = target && target.type;
            for (const one of Array.isArray(type) ? type : type ? [type] : []) {
              if (!types.includes(one)) types.push(one);
            }
          }
          errors.push({
            path: path,
            message: types.length
              ? "must be " + typeWords(types) + ", not " + shown(value)
              : "does not match any of the allowed shapes",
            wrongType: types.length > 0,
          });
        }
      }
      if (schema.not !== undefined) {
        const found = [];
        check(schema.not, value, path, found, refs);
        if (found.length === 0) errors.push({ path: path, message: "must not match " + shown(schema.not) });
      }
    }

    function strings(schema, value, path, errors) {
      const size = length(value);
      if (typeof schema.minLength === "number" && size < schema.minLength) {
        errors.push({ path: path, message: "must be at least " + plural(schema.minLength, "character") + " long" });
      }
      if (typeof schema.maxLength === "number" && size > schema.maxLength) {
        errors.push({ path: path, message: "must be at most " + plural(schema.maxLength, "character") + " long" });
      }
      if (typeof schema.pattern === "string") {
        const pattern = regex(schema.pattern);
        if (pattern !== null && !pattern.test(value)) {
          errors.push({ path: path, message: "must match the pattern " + schema.pattern });
        }
      }
    }

    function numbers(schema, value, path, errors) {
      if (typeof schema.minimum === "number" && value < schema.minimum) {
        errors.push({ path: path, message: "must be at least " + schema.minimum });
      }
      if (typeof schema.maximum === "number" && value > schema.maximum) {
        errors.push({ path: path, message: "must be at most " + schema.maximum });
      }
      if (typeof schema.exclusiveMinimum === "number" && value <= schema.exclusiveMinimum) {
        errors.push({ path: path, message: "must be greater than " + schema.exclusiveMinimum });
      }
      if (typeof schema.exclusiveMaximum === "number" && value >= schema.exclusiveMaximum) {
        errors.push({ path: path, message: "must be less than " + schema.exclusiveMaximum });
      }
      if (typeof schema.multipleOf === "number" && schema.multipleOf > 0) {
        const ratio = value / schema.multipleOf;
        if (Math.abs(ratio - Math.round(ratio)) > 1e-9) {
          errors.push({ path: path, message: "must be a multiple of " + schema.multipleOf });
        }
      }
    }

    function arrays(schema, value, path, errors, refs) {
      if (typeof schema.minItems === "number" && value.length < schema.minItems) {
        errors.push({ path: path, message: "must have at least " + plural(schema.minItems, "item") });
      }
      if (typeof schema.maxItems === "number" && value.length > schema.maxItems) {
        errors.push({ path: path, message: "must have at most " + plural(schema.maxItems, "item") });
      }
      const prefix = Array.isArray(schema.prefixItems) ? schema.prefixItems : [];
      value.forEach(function (item, index) {
        if (index < prefix.length) check(prefix[index], item, childPath(path, index), errors, refs);
        else if (schema.items !== undefined) check(schema.items, item, childPath(path, index), errors, refs);
      });
      if (schema.uniqueItems === true) {
        for (let i = 0; i < value.length; i++) {
          for (let j = 0; j < i; j++) {
            if (equal(value[i], value[j])) {
              errors.push({ path: childPath(path, i), message: "repeats item " + j + " (items must be unique)" });
              j = i;
            }
          }
        }
      }
    }

    function objects(schema, value, path, errors, refs) {
      const properties = schema.properties || {};
      const keys = Object.keys(value);
      if (Array.isArray(schema.required)) {
        for (const name of schema.required) {
          if (!Object.prototype.hasOwnProperty.call(value, name)) {
            errors.push({ path: childPath(path, name), message: "is required" });
          }
        }
      }
      if (typeof schema.minProperties === "number" && keys.length < schema.minProperties) {
        errors.push({ path: path, message: "must have at least " + plural(schema.minProperties, "property") });
      }
      if (typeof schema.maxProperties === "number" && keys.length > schema.maxProperties) {
        errors.push({ path: path, message: "must have at most " + plural(schema.maxProperties, "property") });
      }
      const patterns = Object.entries(schema.patternProperties || {}).map(function (entry) {
        return [regex(entry[0]), entry[1]];
      });
      for (const key of keys) {
        const at = childPath(path, key);
        let known = false;
        if (Object.prototype.hasOwnProperty.call(properties, key)) {
          known = true;
          check(properties[key], value[key], at, errors, refs);
        }
        for (const [pattern, sub] of patterns) {
          if (pattern !== null && pattern.test(key)) {
            known = true;
            check(sub, value[key], at, errors, refs);
          }
        }
        if (known || schema.additionalProperties === undefined || schema.additionalProperties === true) continue;
        if (schema.additionalProperties === false) {
          errors.push({ path: at, message: "is not a field of this object (no extra fields allowed)" });
        } else {
          check(schema.additionalProperties, value[key], at, errors, refs);
        }
      }
    }

    return function (value) {
      const errors = [];
      check(root, value, "$", errors, 0);
      return errors;
    };
  }

  function validate(schema, value) {
    if (!schema || typeof schema !== "object") return [];
    return validator(schema)(value);
  }

  // -- examples ----------------------------------------------------------------------------

  const MAX_EXAMPLE_DEPTH = 8;
  const STRING_FORMATS = {
    "date-time": function () { return new Date().toISOString(); },
    date: function () { return new Date().toISOString().slice(0, 10); },
    time: function () { return new Date().toISOString().slice(11, 19) + "Z"; },
    email: function () { return "user@example.com"; },
    uri: function () { return "https://example.com/"; },
    "uri-reference": function () { return "/path"; },
    uuid: function () { return "123e4567-e89b-42d3-a456-426614174000"; },
    ipv4: function () { return "192.0.2.1"; },
    ipv6: function () { return "2001:db8::1"; },
    hostname: function () { return "example.com"; },
    duration: function () { return "P1D"; },
    binary: function () { return ""; },
  };

  function exampleString(schema) {
    const format = STRING_FORMATS[schema.format];
    let text = format ? format() : "string";
    const min = typeof schema.minLength === "number" ? schema.minLength : 0;
    const max = typeof schema.maxLength === "number" ? schema.maxLength : Infinity;
    while (length(text) < min) text += "x";
    if (length(text) > max) text = Array.from(text).slice(0, max).join("");
    return text;
  }

  function exampleNumber(schema, integer) {
    let value = 0;
    if (typeof schema.minimum === "number") value = schema.minimum;
    else if (typeof schema.exclusiveMinimum === "number") value = schema.exclusiveMinimum + 1;
    else if (typeof schema.maximum === "number" && schema.maximum < 0) value = schema.maximum;
    else if (typeof schema.exclusiveMaximum === "number" && schema.exclusiveMaximum <= 0) value = schema.exclusiveMaximum - 1;
    if (typeof schema.multipleOf === "number" && schema.multipleOf > 0) {
      value = Math.ceil(value / schema.multipleOf) * schema.multipleOf;
    }
    return integer ? Math.ceil(value) : value;
  }

  function example(schema, root, depth) {
    root = root || schema;
    depth = depth || 0;
    if (!schema || typeof schema !== "object" || depth > MAX_EXAMPLE_DEPTH) return null;
    if (Array.isArray(schema.examples) && schema.examples.length) return schema.examples[0];
    if (schema.example !== undefined) return schema.example;
    if (schema.const !== undefined) return schema.const;
    if (Object.prototype.hasOwnProperty.call(schema, "default")) return schema.default;
    if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum[0];
    if (schema.$ref !== undefined) {
      const target = resolve(root, schema.$ref);
      return target ? example(target, root, depth + 1) : null;
    }
    for (const keyword of ["anyOf", "oneOf"]) {
      if (Array.isArray(schema[keyword]) && schema[keyword].length) {
        const nonNull = schema[keyword].filter(function (variant) { return !variant || variant.type !== "null"; });
        return example(nonNull[0] || schema[keyword][0], root, depth + 1);
      }
    }
    if (Array.isArray(schema.allOf) && schema.allOf.length) {
      // pydantic wraps a $ref in allOf to give it a description or a default.
      return example(Object.assign({}, ...schema.allOf), root, depth + 1);
    }
    let type = schema.type;
    if (Array.isArray(type)) type = type.find(function (one) { return one !== "null"; }) || type[0];
    if (type === undefined && schema.properties) type = "object";
    if (type === "object") {
      const result = {};
      for (const [name, sub] of Object.entries(schema.properties || {})) {
        result[name] = example(sub, root, depth + 1);
      }
      for (const name of schema.required || []) {
        if (!(name in result)) result[name] = null;
      }
      return result;
    }
    if (type === "array") {
      if (Array.isArray(schema.prefixItems)) {
        return schema.prefixItems.map(function (sub) { return example(sub, root, depth + 1); });
      }
      const count = Math.max(typeof schema.minItems === "number" ? schema.minItems : 1, 0);
      const limit = typeof schema.maxItems === "number" ? Math.min(count, schema.maxItems) : count;
      const items = [];
      for (let i = 0; i < limit; i++) items.push(example(schema.items || {}, root, depth + 1));
      return items;
    }
    if (type === "string") return exampleString(schema);
    if (type === "integer") return exampleNumber(schema, true);
    if (type === "number") return exampleNumber(schema, false);
    if (type === "boolean") return false;
    return null;
  }

  window.podtaskJson = {
    parse: parse,
    validate: validate,
    example: function (schema) {
      return example(schema, schema, 0);
    },
  };
})();
