/** What every page gets from the app. */
export interface PageProps {
  readonly onNeedsToken: () => void;
}
