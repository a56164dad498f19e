// ESLint for the dashboard's page scripts (classic scripts sharing app.js's helpers).
"use strict";

const js = require("@eslint/js");
const globals = require("globals");

// app.js's top-level helpers, which the page scripts use.
const shared = Object.fromEntries(
  ["API", "BASE_OPTION", "FAMILY_COLORS", "PALETTE", "api", "chartOf", "color", "draw", "el",
    "echartsReady", "errorList", "fmt", "hparamText", "poll", "valueAxis"]
    .map((name) => [name, "readonly"]),
);

module.exports = [
  // vendor/ holds ECharts as the build installs it (vendor.py), minified: not ours to lint.
  { ignores: ["vendor/**"] },
  js.configs.recommended,
  {
    files: ["static/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "script",
      globals: { ...globals.browser, echarts: "readonly" },
    },
    rules: {
      "no-unused-vars": ["error", { vars: "local", args: "after-used" }],
      eqeqeq: "error",
      "no-var": "error",
      "prefer-const": "error",
    },
  },
  {
    files: ["static/index.js", "static/sweep.js", "static/trial.js", "static/login.js", "static/compare.js"],
    languageOptions: { globals: shared },
  },
  {
    files: ["eslint.config.js"],
    languageOptions: { sourceType: "commonjs", globals: globals.node },
  },
];
