"""Lessons: guided steps for a class. One click sets the app's state, a question, then a reveal measured at run time."""

import streamlit as st

import app_state

app_state.sidebar()
st.title("Lessons")
st.markdown(
    "Each lesson is a few steps for a class. **Set up** puts the app in the step's state (model, strategy, sparsity "
    "and the page's settings) and opens the page; everyone answers the question; **Reveal** shows the answer. "
    "Every number in a reveal is measured by the library when it is asked for, on the same bundled model the "
    "page shows, so it cannot disagree with the app."
)

lessons = app_state.registered_lessons()
names = list(lessons)
chosen = app_state.stored_lesson()
name = st.selectbox("Lesson", names, index=names.index(chosen["lesson"]), key="lesson_pick",
                    format_func=lambda n: f"{names.index(n) + 1}. {lessons[n].title}")
if name != chosen["lesson"]:
    app_state.choose_lesson(name)
lesson = lessons[name]
st.markdown(f"*{lesson.summary}*")

for i, step in enumerate(lesson.steps):
    with st.container(border=True):
        st.subheader(f"Step {i + 1}: {step.title}")
        page = app_state.page_path(step.state.page)
        setup = (f"Model **{step.state.model}**, "
                 + (step.state.prune.describe() if step.state.prune is not None else "dense (nothing pruned)"))
        st.caption(f"Sets: {setup}, and opens the page. Then {step.look}." if step.look else f"Sets: {setup}.")
        st.markdown(f"**Question.** {step.question}")
        b1, b2, b3, b4 = st.columns([2, 1, 2, 3])
        if b1.button("Set up", key=f"lesson_setup_{name}_{i}", type="primary", icon=":material/play_arrow:",
                     help="Sets the step's model and settings, then opens its page.",  # a longer label was cut at 1280
                     on_click=app_state.apply_step, args=(name, i)):
            st.switch_page(page)
        b2.button("Reveal", key=f"lesson_reveal_{name}_{i}", icon=":material/visibility:",
                  on_click=app_state.mark_revealed, args=(name, i))
        b3.page_link(page, icon=":material/arrow_forward:", help="Open the page as it is, without setting anything")
        if app_state.step_is_set(name, i):
            b4.success("The app is set for this step.", icon=":material/check:")
        if app_state.is_revealed(name, i):
            with st.spinner("Measuring..."):
                answer = app_state.lesson_reveal(name, i)
            st.markdown(f"**Answer.** {answer.text}")
            if answer.table is not None:
                app_state.show_table(answer.table, f"lesson_{name}_{i}")
