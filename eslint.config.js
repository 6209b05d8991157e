import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.cache/**', 'scripts/ferretdb/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      // Library code never prints; the CLI writes through process.stdout.
      'no-console': 'error',
    },
  },
  { files: ['scripts/**', 'test/**'], rules: { 'no-console': 'off' } },
  { files: ['**/*.cjs'], rules: { '@typescript-eslint/no-require-imports': 'off' } },
  { files: ['test/**'], languageOptions: { globals: { ...globals.mocha } } },
  // The dashboard's scripts run in the browser, as classic scripts; the charts one defines rqCharts for the app.
  { files: ['src/server/dashboard-app.js', 'src/server/dashboard-charts.js'], languageOptions: { globals: { ...globals.browser, rqCharts: 'readonly' }, sourceType: 'script' } },
);
