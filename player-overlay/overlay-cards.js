// The overlay's cards: the poll, the quiz (with its countdowns), the pinned product and the
// Q&A panel, and the viewer's votes, answers and upvotes.

import { el, optionButtons, safeLink, showTallies } from "./overlay-dom.js";

/** The poll, quiz, product and Q&A cards: methods of `<ovation-overlay>`. */
export function withCards(Base) {
  return class OverlayCards extends Base {
    _renderPoll(p) {
      const card = this._$(".poll");
      this._poll = p?.id ? p : null;
      card.dataset.key = this._poll ? `${p.id}:${p.phase}` : "";
      card.hidden = !this._poll || this._dismissed.poll === card.dataset.key;
      if (!this._poll) return this._tick();
      card.dataset.id = p.id;
      card.dataset.phase = p.phase;
      card.querySelector(".phase").textContent =
        { open: "Poll", closed: "Voting closed", result: "Results" }[p.phase] || "Poll";
      card.querySelector(".question").textContent = p.question;
      const buttons = optionButtons(card.querySelector(".options"), p.id, p.options, (i) =>
        this._vote(p.id, i),
      );
      const mine = this._votes.get(p.id);
      buttons.forEach((button, i) => {
        button.setAttribute("aria-pressed", String(mine === i));
        button.setAttribute(
          "aria-disabled",
          String(p.phase !== "open" || mine !== undefined || this.replay),
        );
      });
      showTallies(buttons, p.tallies);
      this._tick();
    }

    async _vote(id, option) {
      const poll = this._poll;
      if (
        !this._room ||
        this.replay ||
        !poll ||
        poll.id !== id ||
        poll.phase !== "open" ||
        this._votes.has(id)
      )
        return;
      this._votes.set(id, option);
      this._renderPoll(poll);
      try {
        await this._room.vote(id, option);
      } catch (e) {
        this._votes.delete(id);
        this._renderPoll(this._poll);
        this._toast(e);
      }
    }

    _renderQuiz(z) {
      const card = this._$(".quiz");
      this._quiz = z?.id ? z : null;
      card.dataset.key = this._quiz ? `${z.id}:${z.phase}:${z.question?.index}` : "";
      card.hidden = !this._quiz || this._dismissed.quiz === card.dataset.key;
      if (!this._quiz) return this._tick();
      const q = z.question;
      const count = z.question_count;
      card.dataset.id = z.id;
      card.dataset.phase = z.phase;
      const phase = {
        new: `Quiz · ${count} questions`,
        open: q ? `Question ${q.index + 1} of ${count}` : "Quiz",
        result: q ? `Answer · ${q.index + 1} of ${count}` : "Quiz",
        ended: "Quiz over",
      }[z.phase];
      card.querySelector(".phase").textContent = phase || "Quiz";
      card.querySelector(".question").textContent =
        z.phase === "new" || z.phase === "ended" || !q ? z.title : q.text;
      const options = card.querySelector(".options");
      options.hidden = !q || z.phase === "new" || z.phase === "ended";
      const key = q ? `${z.id}:${q.index}` : "";
      if (!options.hidden) {
        const buttons = optionButtons(options, key, q.options, (i) =>
          this._answer(z.id, q.index, i),
        );
        const mine = this._answers.get(key);
        buttons.forEach((button, i) => {
          button.setAttribute("aria-pressed", String(mine === i));
          button.setAttribute(
            "aria-disabled",
            String(z.phase !== "open" || mine !== undefined || this.replay),
          );
          button.classList.toggle("correct", q.correct === i);
          const label = button.querySelector(".label");
          label.textContent = q.options[i] + (q.correct === i ? " ✓" : "");
        });
        showTallies(buttons, q.tallies);
      }
      const score = this._score && this._score.quiz === z.id ? this._score : null;
      let line = "";
      if (score && z.phase === "result" && q && score.question === q.index) {
        line = score.answered
          ? score.correct
            ? `Correct! +${score.points}`
            : "Not this time"
          : "No answer";
        line += ` · score ${score.score} · rank ${score.rank} of ${score.participants}`;
      } else if (score && z.phase === "ended") {
        line = `Your score ${score.score} · rank ${score.rank} of ${score.participants}`;
      } else if (z.phase === "new") {
        line = "Starting soon";
      }
      card.querySelector(".score").textContent = line;
      const board = card.querySelector(".leaderboard");
      board.hidden = z.phase !== "ended" || !z.leaderboard?.length;
      board.replaceChildren(
        ...(z.leaderboard || []).slice(0, 5).map((e) => el("li", {}, `${e.name} · ${e.score}`)),
      );
      this._tick();
    }

    async _answer(quiz, index, option) {
      const key = `${quiz}:${index}`;
      const z = this._quiz;
      if (
        !this._room ||
        this.replay ||
        !z ||
        z.id !== quiz ||
        z.phase !== "open" ||
        z.question?.index !== index ||
        this._answers.has(key)
      )
        return;
      this._answers.set(key, option);
      this._renderQuiz(z);
      try {
        await this._room.answer(quiz, index, option);
      } catch (e) {
        this._answers.delete(key);
        this._renderQuiz(this._quiz);
        this._toast(e);
      }
    }

    /** Countdowns of the open poll and quiz question, from the server's clock. */
    _tick() {
      const now = this._room ? this._room.serverNow() : Date.now();
      let running = false;
      const windows = [
        [
          ".poll",
          this._poll?.phase === "open" ? [this._poll.opened_ms, this._poll.closes_at_ms] : null,
        ],
        [
          ".quiz",
          this._quiz?.phase === "open" && this._quiz.question
            ? [this._quiz.question.opened_ms, this._quiz.question.closes_at_ms]
            : null,
        ],
      ];
      for (const [selector, window] of windows) {
        const card = this._$(selector);
        const left = window ? Math.max(0, window[1] - now) : 0;
        card.querySelector(".countdown").textContent = window
          ? `${Math.ceil(left / 1000)} s left`
          : "";
        card.style.setProperty(
          "--remaining",
          window ? String(left / Math.max(1, window[1] - window[0])) : "0",
        );
        running ||= left > 0;
      }
      if (running && !this._timer) this._timer = setInterval(() => this._tick(), 250);
      if (!running && this._timer) {
        clearInterval(this._timer);
        this._timer = null;
      }
    }

    _renderProduct(p) {
      const card = this._$(".product");
      const pinned = p?.pinned;
      card.dataset.key = pinned ? pinned.id : "";
      card.hidden = !pinned || this._dismissed.product === card.dataset.key;
      if (!pinned) return;
      card.dataset.id = pinned.id;
      const image = card.querySelector("img");
      const src = safeLink(pinned.image_url);
      image.hidden = !src;
      if (src) image.src = src;
      card.querySelector(".product-title").textContent = pinned.title;
      card.querySelector(".product-price").textContent = pinned.price;
      const link = card.querySelector(".buy");
      const href = safeLink(pinned.link);
      link.hidden = !href;
      if (href) link.href = href;
      // The name starts with the visible text ("Shop now"), then says what is for sale.
      link.setAttribute("aria-label", `Shop now: ${pinned.title}, ${pinned.price}`);
    }

    _renderQa(qa) {
      this._qa = qa;
      const list = this._$(".qa-list");
      this._$(".qa-count").textContent = qa?.count ? `(${qa.count})` : "";
      // Rebuilt on each change; the focused upvote button is focused again.
      const focused = this.shadowRoot.activeElement?.dataset?.question;
      list.replaceChildren(
        ...(qa?.questions || []).map((q) => {
          const mine = this._upvoted.has(q.id);
          const upvote = el(
            "button",
            {
              type: "button",
              class: "upvote",
              "data-question": q.id,
              "aria-pressed": String(mine),
              "aria-label": `Upvote “${q.text}”, ${q.upvotes} ${q.upvotes === 1 ? "vote" : "votes"}`,
            },
            `▲ ${q.upvotes}`,
          );
          if (this.replay) upvote.setAttribute("aria-disabled", "true");
          upvote.addEventListener("click", () => this._upvote(q.id));
          return el(
            "li",
            { "data-id": q.id, class: q.status },
            el(
              "div",
              {},
              el("p", { class: "q-text" }, q.text),
              el(
                "p",
                { class: "qa-meta" },
                q.name + (q.status === "answered" ? " · answered" : ""),
              ),
            ),
            upvote,
          );
        }),
      );
      if (focused) list.querySelector(`[data-question="${CSS.escape(focused)}"]`)?.focus();
    }

    async _upvote(id) {
      if (!this._room || this.replay || this._upvoted.has(id)) return;
      this._upvoted.add(id);
      this._renderQa(this._qa);
      try {
        await this._room.upvote(id);
      } catch (e) {
        this._upvoted.delete(id);
        this._renderQa(this._qa);
        this._toast(e);
      }
    }
  };
}
