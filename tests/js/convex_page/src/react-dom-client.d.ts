/*
 * The one part of react-dom/client the page uses. tests/js has @types/react
 * but not @types/react-dom, and a strict tsc refuses an untyped import.
 */
declare module "react-dom/client" {
  import type { ReactNode } from "react";
  export interface Root {
    render(children: ReactNode): void;
    unmount(): void;
  }
  export function createRoot(container: Element | DocumentFragment): Root;
}
