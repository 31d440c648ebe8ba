// SimuTrador dashboard: refreshes the live parts of a page, asks before destructive
// forms, and draws a completed session's charts. Served as a file (the pages allow no
// inline script); reads only what the server rendered into data-* attributes.
"use strict";

(function () {
  const SETTLED = new Set(["completed", "error"]);
  // Once the page is being left (a form submitted, a link followed), refreshes stop:
  // a late one must not reload this page over the one the user asked for.
  let leaving = false;
  window.addEventListener("beforeunload", function () {
    leaving = true;
  });

  function signInAgain() {
    window.location.assign("/sign-in?expired=1");
  }

  // <div data-poll="/fragments/..." data-interval="2000">: its content is replaced by the
  // fragment at that URL every interval (paused while the tab is hidden). On a session's
  // page (data-state), a change of state to completed or error reloads the page, which
  // then shows the results.
  function poll(element) {
    const url = element.dataset.poll;
    const every = Number(element.dataset.interval || "2000");
    let busy = false;
    let timer = null;

    async function refresh() {
      if (busy || leaving || document.hidden) return;
      busy = true;
      try {
        const response = await fetch(url, {
          credentials: "same-origin",
          cache: "no-store",
          headers: { Accept: "text/html" },
        });
        if (leaving) return;
        if (response.status === 401) {
          window.clearInterval(timer);
          signInAgain();
          return;
        }
        if (response.status === 404) {
          window.clearInterval(timer);
          window.location.reload();
          return;
        }
        if (leaving || !response.ok) return;
        const html = await response.text();
        const template = document.createElement("template");
        template.innerHTML = html;
        const stateNow = template.content.querySelector("[data-state]");
        const pageState = element.dataset.state;
        element.replaceChildren(template.content);
        if (pageState && stateNow && stateNow.dataset.state !== pageState) {
          if (SETTLED.has(stateNow.dataset.state)) {
            window.clearInterval(timer);
            window.location.reload();
          }
          element.dataset.state = stateNow.dataset.state;
        }
      } catch (error) {
        // The server is restarting or the network blinked: try again next interval.
      } finally {
        busy = false;
      }
    }

    timer = window.setInterval(refresh, every);
  }

  // <form data-confirm="Delete …?">: submitted only once the user agrees.
  function confirmFirst(form) {
    form.addEventListener("submit", function (event) {
      if (window.confirm(form.dataset.confirm)) {
        leaving = true;
      } else {
        event.preventDefault();
      }
    });
  }

  // <select data-autosubmit>: choosing an option submits its form.
  function autosubmit(select) {
    select.addEventListener("change", function () {
      select.form.submit();
    });
  }

  // <div data-figure="/sessions/…/chart.json">: a Plotly figure drawn in place.
  async function drawChart(element) {
    if (!window.Plotly) {
      element.textContent = "Charts are unavailable (the chart library did not load).";
      return;
    }
    try {
      const response = await fetch(element.dataset.figure, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.status === 401) {
        signInAgain();
        return;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      const figure = await response.json();
      element.replaceChildren();
      await window.Plotly.newPlot(element, figure.data, figure.layout, {
        responsive: true,
        displaylogo: false,
      });
      element.dataset.drawn = "true";
    } catch (error) {
      element.textContent = "The charts could not be drawn (" + error.message + ").";
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(poll);
    document.querySelectorAll("form[data-confirm]").forEach(confirmFirst);
    document.querySelectorAll("select[data-autosubmit]").forEach(autosubmit);
    document.querySelectorAll("[data-figure]").forEach(drawChart);
  });
})();
